#include "model/arch.h"

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/qwen3_config.h"

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

std::vector<std::pair<std::string, int64_t>> QuantizedLinearInFeatures(const Qwen3Config& c,
                                                                       int64_t i) {
  const int64_t h = c.hidden_size;
  std::vector<std::pair<std::string, int64_t>> out = {{"self_attn.k_proj", h},
                                                      {"self_attn.v_proj", h},
                                                      {"self_attn.q_proj", h},
                                                      {"self_attn.o_proj", c.q_dim()}};
  if (c.IsMoeLayer(i)) {
    for (int64_t e = 0; e < c.num_experts; ++e) {
      const std::string p = absl::StrCat("mlp.experts.", e, ".");
      out.push_back({p + "up_proj", h});
      out.push_back({p + "gate_proj", h});
      out.push_back({p + "down_proj", c.moe_intermediate_size});
    }
  } else {
    out.push_back({"mlp.up_proj", h});
    out.push_back({"mlp.gate_proj", h});
    out.push_back({"mlp.down_proj", c.intermediate_size});
  }
  return out;
}

std::vector<ScalingGroup> ScalingGroups(const DecoderLayer& layer, int64_t num_heads,
                                        int64_t num_kv_heads, int64_t head_dim) {
  using K = ScalingGroup::PrevKind;
  std::vector<ScalingGroup> groups;
  ScalingGroup qkv;
  qkv.prev_kind = K::kNorm;
  qkv.prev = "input_layernorm";
  qkv.linears = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
  qkv.input_of = "self_attn.q_proj";
  qkv.module = "self_attn";
  groups.push_back(qkv);

  ScalingGroup vo;
  vo.prev_kind = K::kLinearRows;
  vo.prev = "self_attn.v_proj";
  vo.linears = {"self_attn.o_proj"};
  vo.input_of = "self_attn.o_proj";
  vo.module = "self_attn.o_proj";
  vo.repeat_groups = num_heads / num_kv_heads;
  vo.head_dim = head_dim;
  groups.push_back(vo);

  ScalingGroup gu;
  gu.prev_kind = K::kNorm;
  gu.prev = "post_attention_layernorm";
  gu.module = "mlp";
  if (layer.moe) {
    for (size_t e = 0; e < layer.moe->experts.size(); ++e) {
      const std::string p = absl::StrCat("mlp.experts.", e, ".");
      gu.linears.push_back(p + "gate_proj");
      gu.linears.push_back(p + "up_proj");
    }
    gu.also_scaled = {"mlp.gate"};
    gu.input_of = "mlp.gate";
  } else {
    gu.linears = {"mlp.gate_proj", "mlp.up_proj"};
    gu.input_of = "mlp.gate_proj";
  }
  groups.push_back(gu);

  auto down = [&](const std::string& p) {
    ScalingGroup ud;
    ud.prev_kind = K::kLinearRows;
    ud.prev = p + "up_proj";
    ud.linears = {p + "down_proj"};
    ud.input_of = p + "down_proj";
    ud.module = p + "down_proj";
    groups.push_back(ud);
  };
  if (layer.moe) {
    for (size_t e = 0; e < layer.moe->experts.size(); ++e) {
      down(absl::StrCat("mlp.experts.", e, "."));
    }
  } else {
    down("mlp.");
  }
  return groups;
}

}  // namespace bitsweep::model
