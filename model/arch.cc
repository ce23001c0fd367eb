#include "model/arch.h"

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"

namespace bitsweep::model {

std::vector<std::vector<std::string>> SequentialGroups(const DecoderLayer& layer,
                                                       bool true_sequential) {
  std::vector<std::vector<std::string>> groups = {
      {"self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"}, {"self_attn.o_proj"}};
  if (layer.moe) {
    std::vector<std::string> up_gate, down;
    for (size_t e = 0; e < layer.moe->experts.size(); ++e) {
      const std::string p = absl::StrCat("mlp.experts.", e, ".");
      up_gate.push_back(p + "up_proj");
      up_gate.push_back(p + "gate_proj");
      down.push_back(p + "down_proj");
    }
    groups.push_back(up_gate);
    groups.push_back(down);
  } else {
    groups.push_back({"mlp.up_proj", "mlp.gate_proj"});
    groups.push_back({"mlp.down_proj"});
  }
  if (true_sequential) return groups;
  std::vector<std::string> all;
  for (const auto& g : groups) all.insert(all.end(), g.begin(), g.end());
  return {all};
}

std::vector<std::string> QuantizedLinears(const DecoderLayer& layer) {
  return SequentialGroups(layer, /*true_sequential=*/false).front();
}

}  // namespace bitsweep::model
