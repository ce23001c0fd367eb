// Round-to-nearest: every group of a weight quantised independently on a grid (METHODS.md §2.2).
#pragma once

#include <ATen/core/Tensor.h>

#include "common/status.h"
#include "quant/grid.h"

namespace bitsweep::quant {

// w: [out, in] (any float dtype). Per output channel when grid.group_size == -1, else per
// [row, group_size] slice. InvalidArgument when the grid does not fit w.
StatusOr<QuantizedWeight> RtnQuantize(const at::Tensor& w, const QuantGrid& grid);

}  // namespace bitsweep::quant
