#include "tests/quant/smoothquant_testing.h"

#include <ATen/ATen.h>

#include "model/tiny_model.h"

namespace bitsweep::quant::smoothquant_test {

using model::Qwen3Config;
using model::TinyModelOptions;

Qwen3Config Config(bool moe) {
  TinyModelOptions o;
  o.moe = moe;
  o.num_layers = 2;
  return bitsweep::model::TinyConfig(o, kVocab);
}

// Random weights; with `outliers` a few hidden channels of every norm are 25x larger, so the
// norm outputs have the outlier channels SmoothQuant exists for.
Tensors Weights(const Qwen3Config& c, uint64_t seed, bool outliers) {
  Tensors w = bitsweep::model::RandomQwen3Weights(c, seed);
  if (outliers) {
    for (auto& [name, t] : w) {
      if (name.find("layernorm") == std::string::npos) continue;
      for (int64_t ch : {3, 17, 40}) t[ch] = t[ch] * 25;
    }
  }
  return w;
}

// `rows` random id sequences [1, len] and their embeddings (layer 0's inputs).
std::vector<at::Tensor> Ids(int rows, int64_t len, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::vector<at::Tensor> ids;
  for (int r = 0; r < rows; ++r) ids.push_back(at::randint(kVocab, {1, len}, gen, at::kLong));
  return ids;
}

double RelDiff(const at::Tensor& a, const at::Tensor& ref) {
  return (a.to(at::kDouble) - ref.to(at::kDouble)).abs().max().item<double>() /
         ref.abs().max().item<double>();
}

}  // namespace bitsweep::quant::smoothquant_test
