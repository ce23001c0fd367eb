// Helpers shared by the SmoothQuant tests (tests/quant/smoothquant*_test.cc): a tiny Qwen3 with
// outlier channels, random ids, and the relative error they are judged by.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/qwen3_config.h"

namespace bitsweep::quant::smoothquant_test {

using Tensors = std::map<std::string, at::Tensor>;

inline constexpr int64_t kVocab = 96;

// A two-layer tiny Qwen3 (MoE when `moe`) over kVocab ids.
model::Qwen3Config Config(bool moe);
// Random weights; with `outliers` a few hidden channels of every norm are 25x larger, so the
// norm outputs have the outlier channels SmoothQuant exists for.
Tensors Weights(const model::Qwen3Config& c, uint64_t seed, bool outliers);
// `rows` random id sequences [1, len].
std::vector<at::Tensor> Ids(int rows, int64_t len, uint64_t seed);
// max |a - ref| / max |ref|, in double.
double RelDiff(const at::Tensor& a, const at::Tensor& ref);

}  // namespace bitsweep::quant::smoothquant_test
