#include "model/arch.h"

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/qwen3_config.h"

namespace bitsweep::model {

namespace {

// The table of common/qwen3_arch.h for a layer as loaded (names and roles; no in_features).
std::vector<LinearSpec> LayerLinears(const DecoderLayer& layer) {
  Qwen3Dims d;
  if (layer.moe) d.num_experts = static_cast<int64_t>(layer.moe->experts.size());
  return DecoderLinears(d, layer.moe.has_value());
}

}  // namespace

std::vector<std::vector<std::string>> SequentialGroups(const DecoderLayer& layer,
                                                       bool true_sequential) {
  std::vector<std::vector<std::string>> groups;
  int step = -1;
  for (const LinearSpec& l : LayerLinears(layer)) {
    if (groups.empty() || (true_sequential && l.sequential_step != step)) groups.emplace_back();
    step = l.sequential_step;
    groups.back().push_back(l.name);
  }
  return groups;
}

std::vector<std::string> QuantizedLinears(const DecoderLayer& layer) {
  return SequentialGroups(layer, /*true_sequential=*/false).front();
}

std::string SharedInputKey(const std::string& linear) {
  const size_t dot = linear.rfind('.');
  const std::string prefix = dot == std::string::npos ? "" : linear.substr(0, dot + 1);
  const std::string last = dot == std::string::npos ? linear : linear.substr(dot + 1);
  if (last == "q_proj" || last == "k_proj" || last == "v_proj") return prefix + "{q,k,v}_proj";
  if (last == "gate_proj" || last == "up_proj") return prefix + "{gate,up}_proj";
  return linear;
}

std::map<std::string, LinearRole> LinearRoles(const DecoderLayer& layer) {
  std::map<std::string, LinearRole> out;
  for (const LinearSpec& l : LayerLinears(layer)) out[l.name] = {l.expert, l.clip_searched};
  return out;
}

std::vector<std::pair<std::string, int64_t>> QuantizedLinearInFeatures(const Qwen3Config& c,
                                                                       int64_t i) {
  Qwen3Dims d;
  d.hidden_size = c.hidden_size;
  d.intermediate_size = c.intermediate_size;
  d.moe_intermediate_size = c.moe_intermediate_size;
  d.q_dim = c.q_dim();
  d.num_experts = c.num_experts;
  std::vector<std::pair<std::string, int64_t>> out;
  for (const LinearSpec& l : DecoderLinears(d, c.IsMoeLayer(i))) {
    out.emplace_back(l.name, l.in_features);
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
  vo.shares_kv_heads = true;
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
