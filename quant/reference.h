// Reference GPTQ, the plain version the optimised one is checked against: column by column,
// straight from the fasterquant pseudo-code of docs/methods.md#gptq, without lazy blocks or raw
// pointers, written to be read. It exists to check GptqQuantize (quant/gptq.h), which must agree
// with it to a float tolerance; it is O(in) tensor operations per column and is not meant for real
// layers.
#pragma once

#include <ATen/core/Tensor.h>

#include "common/status.h"
#include "quant/gptq.h"

namespace bitsweep::quant {

// Same contract and errors as GptqQuantize. Each column's error is applied at once to every later
// column (a rank-1 update). The one place fasterquant's lazy batching changes the result is
// mirrored here on purpose: a group's params are found on W as it stood when the lazy block of
// `options.blocksize` columns containing the group's first column began, i.e. without the
// updates from that block's earlier columns.
// w: [out, in]; h: [in, in].
StatusOr<GptqResult> GptqQuantizeRef(const at::Tensor& w, const at::Tensor& h,
                                     const GptqOptions& options);

}  // namespace bitsweep::quant
