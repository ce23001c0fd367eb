// The one spelling of dtypes that every input of bitsweep accepts: the `bitsweep` flags
// (cli/flags.h) and the sweep file's dtype keys (common/sweep.h). fp32, bf16 and fp16 are the
// canonical names; case is ignored and the older and longer spellings are aliases (f32, float32
// for fp32; bfloat16 for bf16; f16, float16, half for fp16). `auto` (the device's default,
// model::ResolveComputeDType) is canonical too, for the flags that allow it. Pure functions;
// thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep {

// The canonical name of `value` when it names one of `allowed` (canonical names, in the order
// an error lists them); otherwise INVALID_ARGUMENT saying what is accepted: "unknown dtype
// \"fp64\" (use fp32 or bf16; also accepted: f32, float32, bfloat16)", or for a dtype known but
// not allowed here "fp16 is not accepted here (use fp32 or bf16)".
StatusOr<std::string> CanonicalDType(std::string_view value,
                                     const std::vector<std::string>& allowed);

}  // namespace bitsweep
