// Architecture knowledge the quantizers need, kept in one table so that a new architecture is
// one edit here, not one per method: which linears a Qwen3 decoder layer has and in which groups
// the layer-wise methods calibrate them.
// Algorithms receive these names, never inspect the model's structure themselves.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/qwen3_arch.h"

namespace bitsweep::model {

struct DecoderLayer;
struct Qwen3Config;

// GPTQ's true-sequential order: {k, v, q} | {o} | {up, gate} | {down}; in MoE layers the
// expert MLPs take the place of the dense MLP ({experts.*.up, experts.*.gate} | {experts.*.down})
// and the router ("mlp.gate") is not listed: it stays in full precision.
// Without true_sequential (one Hessian pass per layer): one group of every quantised linear.
std::vector<std::vector<std::string>> SequentialGroups(const DecoderLayer& layer,
                                                       bool true_sequential);

// Every linear a weight quantizer replaces in `layer` (the groups above, flattened).
std::vector<std::string> QuantizedLinears(const DecoderLayer& layer);

// What the methods need to know of each quantized linear of `layer`, by name (see
// common/qwen3_arch.h): an MoE expert (calibrated on its routed tokens; few tokens mean a
// fallback), and whether AWQ's clip search applies. Names not listed (the router) are neither.
struct LinearRole {
  bool expert = false;
  bool clip_searched = true;
};
std::map<std::string, LinearRole> LinearRoles(const DecoderLayer& layer);

// Linears that read the same input tensor in a decoder layer's forward share a key: q, k and v
// (the normed hidden states), and gate and up of the dense MLP or of one expert (its routed
// tokens). Any other linear's key is its own name. Relative names ("self_attn.k_proj" ->
// "self_attn.{q,k,v}_proj"); a Hessian of the input is the same for every linear of a key.
std::string SharedInputKey(const std::string& linear);

// The quantized linears of layer `i` with their in_features, from the config alone (the
// driver validates a grid against every linear before it loads any layer).
std::vector<std::pair<std::string, int64_t>> QuantizedLinearInFeatures(const Qwen3Config& c,
                                                                       int64_t i);

// An activation-scaling group (AWQ's auto_scale, W+A smoothing): the input columns of
// `linears` are multiplied by s and the op producing their input (`prev`) absorbs 1/s, so the
// FP function is unchanged. `also_scaled` are linears reading the same input that must take
// the same column scaling to keep the function but are not quantized (the MoE router).
struct ScalingGroup {
  enum class PrevKind { kNorm, kLinearRows };
  PrevKind prev_kind = PrevKind::kNorm;
  // "input_layernorm" / "post_attention_layernorm" (a [hidden] norm weight), or a linear whose
  // output rows are divided by s ("self_attn.v_proj", "mlp.up_proj", "mlp.experts.3.up_proj").
  std::string prev;
  std::vector<std::string> linears;      // scaled (and quantized) linears
  std::vector<std::string> also_scaled;  // scaled, not quantized (router)
  // The linear whose input is the group's input feature (x in AWQ's search).
  std::string input_of;
  // What AWQ matches outputs on: "self_attn" (whole attention), "mlp" (whole MLP / MoE block)
  // or the name of a single linear.
  std::string module;
  // v->o under GQA: v_proj has num_kv_heads*head_dim rows and o_proj num_heads*head_dim input
  // columns; s has v_proj's row count and is repeated over the query heads of each kv group
  // (o column h*head_dim + d takes s[(h / (num_heads/num_kv_heads))*head_dim + d]).
  bool shares_kv_heads = false;  // true for v->o (its scale is per kv channel)
  int64_t repeat_groups = 1;     // num_heads / num_kv_heads for v->o, else 1
  int64_t head_dim = 0;          // for v->o
};

// The groups of a Qwen3 block, in this order: input_layernorm -> q,k,v (module self_attn);
// v_proj -> o_proj (module self_attn.o_proj; repeat_groups = num_heads/num_kv_heads);
// post_attention_layernorm -> gate,up (module mlp; in MoE layers every expert's gate and up,
// with the router in also_scaled); up -> down per MLP (module the down_proj itself; per expert
// in MoE layers). `num_heads`/`num_kv_heads`/`head_dim` come from the config.
std::vector<ScalingGroup> ScalingGroups(const DecoderLayer& layer, int64_t num_heads,
                                        int64_t num_kv_heads, int64_t head_dim);

}  // namespace bitsweep::model
