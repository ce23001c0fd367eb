// The torch-free half of model/arch.h (architecture knowledge in one table, which the
// coordinator may read without libtorch): the quantized linears of a Qwen3 decoder
// layer from config.json numbers alone, with what the methods and the coordinator need to know
// of each (in_features and the config key it comes from, GPTQ's true-sequential step, whether
// it is an MoE expert, whether AWQ's clip search applies). model/arch.cc builds its groups from
// this table, and common/sweep.cc checks group sizes against it without linking libtorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitsweep {

// The numbers of config.json that shape a decoder layer's linears.
struct Qwen3Dims {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;      // dense MLP width
  int64_t moe_intermediate_size = 0;  // expert MLP width
  int64_t q_dim = 0;                  // num_attention_heads * head_dim (o_proj's input)
  int64_t num_experts = 0;
};

struct LinearSpec {
  std::string name;  // "self_attn.q_proj", "mlp.experts.3.down_proj"
  int64_t in_features = 0;
  const char* in_features_key;  // where in_features comes from ("hidden_size", ...)
  // GPTQ's true-sequential step: 0 {k, v, q}, 1 {o}, 2 {up, gate}, 3 {down}.
  int sequential_step = 0;
  bool expert = false;  // an MoE expert's linear: calibrated on its routed tokens only
  // AWQ's clip search applies (llm-awq auto_clip_block skips q and k: "due to qk bmm, it is
  // hard to clip precisely").
  bool clip_searched = true;
};

// Every linear a weight quantizer replaces in a dense (`moe_layer` false) or MoE decoder layer,
// in GPTQ's true-sequential order: k, v, q | o | up, gate | down; in MoE layers the experts'
// up, gate (expert by expert) | the experts' downs. The MoE router ("mlp.gate") is not listed:
// it stays in full precision.
std::vector<LinearSpec> DecoderLinears(const Qwen3Dims& dims, bool moe_layer);

}  // namespace bitsweep
