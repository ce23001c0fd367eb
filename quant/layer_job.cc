#include "quant/layer_job.h"

#include "model/qwen3.h"

namespace bitsweep::quant {

model::Linear* FindLinearIn(model::DecoderLayer& layer, const std::string& name) {
  for (auto& [n, lin] : layer.Linears()) {
    if (n == name) return lin;
  }
  return nullptr;
}

}  // namespace bitsweep::quant
