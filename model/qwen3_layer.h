// One Qwen3 decoder layer: its weights and its forward ops, following Hugging Face's
// modeling_qwen3.py and modeling_qwen3_moe.py (docs/study-protocol.md):
//   x = RMSNorm(h); q,k,v = x W^T; q,k = RMSNorm_{q,k} over head_dim (before RoPE); RoPE;
//   causal GQA attention (softmax in fp32); h += o_proj(attn);
//   h += MLP(RMSNorm(h)) with MLP = down(silu(gate x) * up x), or the top-k routed MoE block.
//
// Every op runs in its input's dtype (fp32 or bf16, as HF does with torch_dtype; RMSNorm
// statistics and softmax in fp32) and creates its tensors on its input's device. Under tensor
// parallelism (model/qwen3.h) a layer holds this rank's shards; the ops take head counts from
// the weights, and the row-parallel linears all-reduce, so the same code runs a shard.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/linear.h"
#include "model/qwen3_config.h"

namespace bitsweep::model {

enum class ComputeDType { kFloat32, kBFloat16 };
StatusOr<ComputeDType> ParseComputeDType(const std::string& name);  // "fp32" | "bf16"
// ParseComputeDType, where "auto" is the default for `device`: bf16 on CUDA (what GPUs run
// the study's models in), fp32 on the CPU (where bf16 matmuls are slower and the reference
// numbers were taken). The reductions that the references accumulate in fp32 (the GPTQ
// Hessian and its inverse, RMSNorm, softmax, log-softmax) stay fp32 either way.
StatusOr<ComputeDType> ResolveComputeDType(const std::string& name, const c10::Device& device);
const char* ComputeDTypeName(ComputeDType dtype);
at::ScalarType ToScalarType(ComputeDType dtype);

struct Mlp {
  Linear gate_proj, up_proj, down_proj;
  at::Tensor Forward(const at::Tensor& x) const;  // [N, hidden] or [B, T, hidden]
  // down_proj's input: silu(gate_proj(x)) * up_proj(x). Forward(x) is down_proj(Activation(x)).
  at::Tensor Activation(const at::Tensor& x) const;
};

struct MoeBlock {
  Linear gate;               // the router, [num_experts, hidden]
  std::vector<Mlp> experts;  // under TP each expert's down_proj output is a partial sum ...
  std::shared_ptr<const Collective> collective;  // ... that Forward all-reduces once (or null)
  int64_t top_k = 0;
  bool norm_topk_prob = false;
  at::Tensor Forward(const at::Tensor& x) const;  // [B, T, hidden]
};

struct DecoderLayer {
  at::Tensor input_layernorm, post_attention_layernorm;  // [hidden]
  at::Tensor q_norm, k_norm;                             // [head_dim]
  Linear q_proj, k_proj, v_proj, o_proj;
  std::optional<Mlp> mlp;       // dense layers
  std::optional<MoeBlock> moe;  // sparse layers

  // Named linears, as HF module names relative to the layer ("self_attn.q_proj",
  // "mlp.gate_proj", "mlp.experts.3.down_proj", "mlp.gate" for the router).
  std::vector<std::pair<std::string, Linear*>> Linears();
};

// Which keys a query may attend to. Causal attention always applies (key j is never visible
// to a query i < j); a prefix-tree mask further hides the keys that are not the query's
// ancestors.
//  subtree_end: undefined for plain causal attention (every row is one sequence); else
//    [B, T] int64, and key j of row b is visible to query i iff j <= i < subtree_end[b][j].
//    A prefix tree laid out in preorder, with subtree_end = the end of each node's subtree,
//    lets every token see exactly its ancestors, so several sequences that share prefixes run
//    as one row (the log-likelihood engine).
struct AttentionMask {
  at::Tensor subtree_end;
  bool causal_only() const { return !subtree_end.defined(); }
};

// Position-dependent inputs shared by every layer of one forward.
//  cos, sin: RoPE tables, [T, head_dim] for positions 0..T-1 in every row, or [B, T, head_dim]
//    for per-row positions.
//  mask: the attention mask (above).
struct RopeTables {
  at::Tensor cos, sin;
  AttentionMask mask;
};

// RoPE tables (no mask) for integer positions of any shape: [..., head_dim], in `dtype`,
// computed on the host (the same numbers for every device; callers copy them over). HF computes inv_freq = 1 / theta^(arange(0, hd, 2) / hd) and the
// angles in fp32.
RopeTables RopeForPositions(const Qwen3Config& config, at::ScalarType dtype,
                            const at::Tensor& positions);

// RMSNorm as HF computes it: weight * (x_fp32 * rsqrt(mean(x_fp32^2) + eps)).to(x.dtype).
at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps);

// HF's self_attn on its normed input, without the residual: q/k/v, q/k norms, RoPE, masked GQA
// attention, o_proj. [B, T, hidden] -> [B, T, hidden].
at::Tensor SelfAttentionForward(const DecoderLayer& layer, const Qwen3Config& config,
                                const at::Tensor& normed, const RopeTables& rope);

// The attention of SelfAttentionForward before o_proj: o_proj's input, [B, T, q_dim].
at::Tensor AttentionContext(const DecoderLayer& layer, const Qwen3Config& config,
                            const at::Tensor& normed, const RopeTables& rope);

// The whole decoder layer with both residuals: [B, T, hidden] -> [B, T, hidden].
at::Tensor DecoderLayerForward(const DecoderLayer& layer, const Qwen3Config& config,
                               const at::Tensor& hidden, const RopeTables& rope);

// A dense decoder layer's forward cut at the inputs of its linear groups, in true-sequential
// order (model/arch.h SequentialGroups): {k, v, q} read the normed hidden state, {o} the
// attention context, {up, gate} the normed residual after attention, {down} the MLP's
// activation. For a driver that replaces a group's weights after seeing its input and before
// the next group runs (true-sequential calibration): each Next() computes only what follows
// the previous group, with that group's weights as they are now, so a layer costs about one
// forward instead of one per group. Running the stages is DecoderLayerForward op for op: the
// output equals RunLayer's bit for bit when no weight changed.
class DenseLayerStages {
 public:
  static constexpr int kGroups = 4;
  // REQUIRES: layer is dense (no MoE block); `hidden` [B, T, hidden].
  DenseLayerStages(const DecoderLayer& layer, const Qwen3Config& config, const RopeTables& rope,
                   at::Tensor hidden);
  // The input of the next group (0: q/k/v, 1: o, 2: up/gate, 3: down), computed through the
  // previous group's linears. Called kGroups times.
  const at::Tensor& Next();
  // The layer's output, through down_proj; after the kGroups-th Next().
  at::Tensor Output();

 private:
  const DecoderLayer& layer_;
  const Qwen3Config& config_;
  const RopeTables& rope_;
  int next_ = 0;
  at::Tensor hidden_;  // the layer's input, then the residual after attention
  at::Tensor input_;   // the current group's input
};

}  // namespace bitsweep::model
