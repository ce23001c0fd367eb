// Value checks shared by the `bitsweep` verbs' flags, written as CLI11 transforms: each accepts
// the spellings a user may type and rewrites the value to the one spelling the rest of bitsweep
// uses, so the options structs only ever hold canonical names.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace bitsweep::cli {

// A dtype flag: fp32, bf16 or fp16, ignoring case, with the older and longer spellings as
// aliases (f32 and float32 for fp32, bfloat16 for bf16, f16, float16 and half for fp16). Values
// outside `allowed` (canonical names) are refused naming what is.
CLI::Validator DTypeFlag(const std::vector<std::string>& allowed);

// A quantization method name of common/catalog.h, ignoring case, rewritten as the catalog spells
// it; a typo is refused with "did you mean" the closest name. The fp baseline is refused.
CLI::Validator QuantizationMethodFlag();

}  // namespace bitsweep::cli
