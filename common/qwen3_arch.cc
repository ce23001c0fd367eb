#include "common/qwen3_arch.h"

#include "absl/strings/str_cat.h"

namespace bitsweep {

std::vector<LinearSpec> DecoderLinears(const Qwen3Dims& d, bool moe_layer) {
  auto linear = [](std::string name, int64_t in, const char* key, int step) {
    LinearSpec s;
    s.name = std::move(name);
    s.in_features = in;
    s.in_features_key = key;
    s.sequential_step = step;
    return s;
  };
  std::vector<LinearSpec> out = {
      linear("self_attn.k_proj", d.hidden_size, "hidden_size", 0),
      linear("self_attn.v_proj", d.hidden_size, "hidden_size", 0),
      linear("self_attn.q_proj", d.hidden_size, "hidden_size", 0),
      linear("self_attn.o_proj", d.q_dim, "num_attention_heads*head_dim", 1)};
  out[0].clip_searched = false;  // k_proj
  out[2].clip_searched = false;  // q_proj
  if (!moe_layer) {
    out.push_back(linear("mlp.up_proj", d.hidden_size, "hidden_size", 2));
    out.push_back(linear("mlp.gate_proj", d.hidden_size, "hidden_size", 2));
    out.push_back(linear("mlp.down_proj", d.intermediate_size, "intermediate_size", 3));
    return out;
  }
  for (int64_t e = 0; e < d.num_experts; ++e) {
    const std::string p = absl::StrCat("mlp.experts.", e, ".");
    out.push_back(linear(p + "up_proj", d.hidden_size, "hidden_size", 2));
    out.push_back(linear(p + "gate_proj", d.hidden_size, "hidden_size", 2));
    out[out.size() - 2].expert = out.back().expert = true;
  }
  for (int64_t e = 0; e < d.num_experts; ++e) {
    out.push_back(linear(absl::StrCat("mlp.experts.", e, ".down_proj"), d.moe_intermediate_size,
                         "moe_intermediate_size", 3));
    out.back().expert = true;
  }
  return out;
}

}  // namespace bitsweep
