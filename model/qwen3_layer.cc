#include "model/qwen3_layer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace {

// Query rows per attention chunk: the causal mask lets chunk [s, e) skip keys >= e, which
// saves about half of the attention FLOPs at long sequence lengths and bounds the score buffer.
constexpr int64_t kAttentionChunk = 256;

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

at::ScalarType ToScalarType(ComputeDType d) {
  return d == ComputeDType::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

StatusOr<ComputeDType> ParseComputeDType(const std::string& name) {
  if (name == "fp32" || name == "float32") return ComputeDType::kFloat32;
  if (name == "bf16" || name == "bfloat16") return ComputeDType::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compute dtype \"", name, "\" (expected fp32 or bf16)"));
}

StatusOr<ComputeDType> ResolveComputeDType(const std::string& name, const c10::Device& device) {
  if (name == "auto") return device.is_cuda() ? ComputeDType::kBFloat16 : ComputeDType::kFloat32;
  auto parsed = ParseComputeDType(name);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown compute dtype \"", name, "\" (expected auto, fp32 or bf16)"));
  }
  return parsed;
}

const char* ComputeDTypeName(ComputeDType dtype) {
  return dtype == ComputeDType::kBFloat16 ? "bf16" : "fp32";
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(var + eps);
  return weight * xf.to(x.scalar_type());
}

at::Tensor Mlp::Activation(const at::Tensor& x) const {
  return at::silu(gate_proj.Forward(x)) * up_proj.Forward(x);
}

at::Tensor Mlp::Forward(const at::Tensor& x) const { return down_proj.Forward(Activation(x)); }

at::Tensor MoeBlock::Forward(const at::Tensor& x) const {
  const auto shape = x.sizes().vec();
  at::Tensor flat = x.reshape({-1, x.size(-1)});
  at::Tensor probs = at::softmax(gate.Forward(flat).to(at::kFloat), 1);
  auto [weights, index] = at::topk(probs, top_k, -1);
  if (norm_topk_prob) weights = weights / weights.sum(-1, /*keepdim=*/true);
  weights = weights.to(x.scalar_type());

  at::Tensor out = at::zeros_like(flat);
  // Group (token, slot) pairs by expert on the host: one gather, one expert MLP and one
  // index_add per expert that received tokens, in expert order as HF does.
  at::Tensor flat_index = index.reshape({-1}).to(at::kLong).contiguous();
  at::Tensor order = at::argsort(flat_index);  // positions token * top_k + slot
  at::Tensor counts =
      at::bincount(flat_index, {}, static_cast<int64_t>(experts.size())).cpu();  // on the host
  const int64_t* count = counts.data_ptr<int64_t>();
  at::Tensor flat_weights = weights.reshape({-1});
  int64_t begin = 0;
  for (size_t e = 0; e < experts.size(); ++e) {
    const int64_t n = count[e];
    if (n == 0) continue;
    at::Tensor pos = order.narrow(0, begin, n);
    begin += n;
    at::Tensor tokens = at::div(pos, top_k, "floor");
    at::Tensor y = experts[e].Forward(flat.index_select(0, tokens)) *
                   flat_weights.index_select(0, pos).unsqueeze(1);
    out.index_add_(0, tokens, y);
  }
  // Under TP each expert's down_proj gave a partial sum: one all-reduce for the whole block.
  if (collective && collective->world_size() > 1) collective->AllReduceSum(out);
  return out.view(shape);
}

std::vector<std::pair<std::string, Linear*>> DecoderLayer::Linears() {
  std::vector<std::pair<std::string, Linear*>> out = {{"self_attn.q_proj", &q_proj},
                                                      {"self_attn.k_proj", &k_proj},
                                                      {"self_attn.v_proj", &v_proj},
                                                      {"self_attn.o_proj", &o_proj}};
  if (mlp) {
    out.push_back({"mlp.gate_proj", &mlp->gate_proj});
    out.push_back({"mlp.up_proj", &mlp->up_proj});
    out.push_back({"mlp.down_proj", &mlp->down_proj});
  }
  if (moe) {
    out.push_back({"mlp.gate", &moe->gate});
    for (size_t e = 0; e < moe->experts.size(); ++e) {
      const std::string p = absl::StrCat("mlp.experts.", e, ".");
      out.push_back({p + "gate_proj", &moe->experts[e].gate_proj});
      out.push_back({p + "up_proj", &moe->experts[e].up_proj});
      out.push_back({p + "down_proj", &moe->experts[e].down_proj});
    }
  }
  return out;
}

RopeTables RopeForPositions(const Qwen3Config& c, at::ScalarType dt, const at::Tensor& positions) {
  const int64_t hd = c.head_dim;
  at::Tensor exponent = at::arange(0, hd, 2, at::kLong).to(at::kFloat) / static_cast<double>(hd);
  at::Tensor inv_freq = 1.0 / at::pow(at::Scalar(c.rope_theta), exponent);
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dt), emb.sin().to(dt), AttentionMask{}};
}

at::Tensor AttentionContext(const DecoderLayer& l, const Qwen3Config& c, const at::Tensor& x,
                            const RopeTables& rope) {
  const int64_t B = x.size(0), T = x.size(1), hd = c.head_dim;
  // Head counts come from the (possibly column-sharded) weights, so a tensor-parallel shard
  // runs its own heads with no change here.
  const int64_t n_heads = l.q_proj.out_features() / hd;
  const int64_t n_kv = l.k_proj.out_features() / hd;
  const int64_t group = n_heads / n_kv;

  at::Tensor q = RmsNorm(l.q_proj.Forward(x).view({B, T, n_heads, hd}), l.q_norm, c.rms_norm_eps);
  at::Tensor k = RmsNorm(l.k_proj.Forward(x).view({B, T, n_kv, hd}), l.k_norm, c.rms_norm_eps);
  at::Tensor v = l.v_proj.Forward(x).view({B, T, n_kv, hd});
  const bool per_row = rope.cos.dim() == 3;
  const at::Tensor cos = per_row ? rope.cos.view({B, T, 1, hd}) : rope.cos.view({T, 1, hd});
  const at::Tensor sin = per_row ? rope.sin.view({B, T, 1, hd}) : rope.sin.view({T, 1, hd});
  q = q * cos + RotateHalf(q) * sin;
  k = k * cos + RotateHalf(k) * sin;

  // Query head h = kv * group + g uses kv head `kv` (HF's repeat_kv order). Lay queries out as
  // [B, n_kv, group, T, hd] so each kv head is one batched GEMM with no copy of K or V.
  q = q.view({B, T, n_kv, group, hd}).permute({0, 2, 3, 1, 4}).contiguous();
  k = k.permute({0, 2, 1, 3}).contiguous().view({B * n_kv, T, hd});
  v = v.permute({0, 2, 1, 3}).contiguous().view({B * n_kv, T, hd});
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  const bool low_precision = x.scalar_type() != at::kFloat;

  at::Tensor out = at::empty({B, n_kv, group, T, hd}, x.options());
  const bool tree = !rope.mask.causal_only();
  for (int64_t s = 0; s < T; s += kAttentionChunk) {
    const int64_t e = std::min(T, s + kAttentionChunk);
    const int64_t n = e - s;
    at::Tensor qc = q.narrow(3, s, n).reshape({B * n_kv, group * n, hd});
    at::Tensor kc = k.narrow(1, 0, e);
    at::Tensor vc = v.narrow(1, 0, e);
    at::Tensor key_pos, key_end;  // prefix-tree rows: the gathered keys and their ends
    if (tree) {
      // Keys whose subtree ends before the chunk starts are invisible to all of its queries
      // (in every row): gather only the others, so attention costs ancestors + chunk, not T.
      at::Tensor end = rope.mask.subtree_end.narrow(1, 0, e);  // [B, e]
      key_pos = end.gt(s).any(0).nonzero().view({-1});    // [K]
      if (key_pos.size(0) < e) {
        kc = kc.index_select(1, key_pos);
        vc = vc.index_select(1, key_pos);
        end = end.index_select(1, key_pos);
      }
      key_end = end;
    }
    const int64_t K = kc.size(1);
    // (q k^T) * scale as HF's eager attention. Not baddbmm over an empty tensor with beta 0:
    // with libtorch 1.13 in bf16 that gave NaN now and then (the input seems to be read).
    at::Tensor scores = at::bmm(qc, kc.transpose(1, 2)).mul_(scale);
    if (tree) {
      // Key j is visible to query i iff j <= i < subtree_end[j].
      at::Tensor qi = at::arange(s, e, x.options().dtype(at::kLong)).view({1, n, 1});
      at::Tensor kj = key_pos.view({1, 1, K});
      at::Tensor blocked = kj.gt(qi).logical_or(qi.ge(key_end.view({B, 1, K})));  // [B, n, K]
      scores.view({B, n_kv, group, n, K}).masked_fill_(blocked.view({B, 1, 1, n, K}), -INFINITY);
    } else {
      // Query s+i may not see keys j > s+i: only the diagonal block [s, e) has masked entries.
      at::Tensor future = at::ones({n, n}, x.options().dtype(at::kBool)).triu(1);
      scores.view({B * n_kv, group, n, e}).narrow(3, s, n).masked_fill_(future, -INFINITY);
    }
    at::Tensor probs = low_precision ? at::softmax(scores.to(at::kFloat), -1).to(x.scalar_type())
                                     : at::softmax(scores, -1);
    out.narrow(3, s, n).copy_(at::bmm(probs, vc).view({B, n_kv, group, n, hd}));
  }
  return out.permute({0, 3, 1, 2, 4}).reshape({B, T, n_heads * hd});
}

at::Tensor SelfAttentionForward(const DecoderLayer& l, const Qwen3Config& c,
                                const at::Tensor& normed, const RopeTables& rope) {
  return l.o_proj.Forward(AttentionContext(l, c, normed, rope));
}

at::Tensor DecoderLayerForward(const DecoderLayer& l, const Qwen3Config& c,
                               const at::Tensor& hidden, const RopeTables& rope) {
  const double eps = c.rms_norm_eps;
  at::Tensor h = hidden + SelfAttentionForward(l, c, RmsNorm(hidden, l.input_layernorm, eps), rope);
  at::Tensor x = RmsNorm(h, l.post_attention_layernorm, eps);
  return h + (l.moe ? l.moe->Forward(x) : l.mlp->Forward(x));
}

DenseLayerStages::DenseLayerStages(const DecoderLayer& layer, const Qwen3Config& config,
                                   const RopeTables& rope, at::Tensor hidden)
    : layer_(layer), config_(config), rope_(rope), hidden_(std::move(hidden)) {
  TORCH_CHECK(layer.mlp.has_value() && !layer.moe.has_value(),
              "DenseLayerStages: the layer is not dense");
}

// The stages of DecoderLayerForward: h = hidden + o_proj(context(RmsNorm(hidden)));
// out = h + down(activation(RmsNorm(h))).
const at::Tensor& DenseLayerStages::Next() {
  const double eps = config_.rms_norm_eps;
  switch (next_++) {
    case 0:
      input_ = RmsNorm(hidden_, layer_.input_layernorm, eps);
      break;
    case 1:
      input_ = AttentionContext(layer_, config_, input_, rope_);
      break;
    case 2:
      hidden_ = hidden_ + layer_.o_proj.Forward(input_);
      input_ = RmsNorm(hidden_, layer_.post_attention_layernorm, eps);
      break;
    case 3:
      input_ = layer_.mlp->Activation(input_);
      break;
    default:
      TORCH_CHECK(false, "DenseLayerStages: Next() after the last group");
  }
  return input_;
}

at::Tensor DenseLayerStages::Output() {
  TORCH_CHECK(next_ == kGroups, "DenseLayerStages: Output() before the last group's input");
  ++next_;
  return hidden_ + layer_.mlp->down_proj.Forward(input_);
}

}  // namespace bitsweep::model
