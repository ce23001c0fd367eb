// Qwen3Model's forward: embeddings, RoPE, the decoder layers (model/qwen3_layer.cc), the final
// norm and lm_head (vocabulary-parallel under TP), and its weights by name. Loading and layer
// streaming are in qwen3_load.cc, tensor-parallel gathering in qwen3_tp.cc.
#include "model/qwen3.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {

at::Tensor Qwen3Model::Embed(const at::Tensor& ids) const {
  at::Tensor rows = at::embedding(embed_tokens_, ids.to(embed_tokens_.device()));
  // lazy_globals: only the selected rows are converted (and copied to the device).
  return rows.to(device_, ToScalarType(dtype_));
}

// The tables are computed on the host (the same numbers on every device) and copied over.
RopeTables Qwen3Model::MakeRope(int64_t seq_len) const {
  RopeTables t = RopeForPositions(config_, ToScalarType(dtype_), at::arange(seq_len, at::kLong));
  return {t.cos.to(device_), t.sin.to(device_), AttentionMask{}};
}

RopeTables Qwen3Model::MakeRope(const at::Tensor& positions) const {
  TORCH_CHECK(positions.dim() == 2, "MakeRope: positions must be [B, T]");
  RopeTables t = RopeForPositions(config_, ToScalarType(dtype_), positions.cpu());
  return {t.cos.to(device_), t.sin.to(device_), AttentionMask{}};
}

at::Tensor Qwen3Model::RunLayer(int64_t i, const at::Tensor& hidden, const RopeTables& rope) const {
  TORCH_CHECK(loaded_.at(i), "decoder layer ", i, " is not materialized (lazy model)");
  return DecoderLayerForward(layers_.at(i), config_, hidden, rope);
}

at::Tensor Qwen3Model::SelfAttention(int64_t i, const at::Tensor& normed,
                                     const RopeTables& rope) const {
  return SelfAttentionForward(layers_.at(i), config_, normed, rope);
}

at::Tensor Qwen3Model::FinalNorm(const at::Tensor& hidden) const {
  return RmsNorm(hidden, norm_, config_.rms_norm_eps);
}

at::Tensor Qwen3Model::HeadLogits(const at::Tensor& normed) const {
  const at::ScalarType dt = ToScalarType(dtype_);
  if (lm_head_.scalar_type() == dt) return at::matmul(normed, lm_head_.t());
  // lazy_globals: convert lm_head one vocabulary chunk at a time; each chunk's logits are the
  // matching columns of the whole product.
  const int64_t V = lm_head_.size(0);
  std::vector<int64_t> shape(normed.sizes().begin(), normed.sizes().end());
  shape.back() = V;
  at::Tensor out = at::empty(shape, normed.options().dtype(dt));
  for (int64_t v = 0; v < V; v += kLmHeadChunkRows) {
    const int64_t n = std::min(kLmHeadChunkRows, V - v);
    const at::Tensor rows = lm_head_.narrow(0, v, n).to(normed.device(), dt);
    out.narrow(-1, v, n).copy_(at::matmul(normed, rows.t()));
  }
  return out;
}

at::Tensor Qwen3Model::LmHead(const at::Tensor& normed) const {
  at::Tensor local = HeadLogits(normed);
  if (tp_->world_size() == 1) return local;
  // Vocabulary-parallel: every rank computed ceil(V/W) logits; gather and drop the padding.
  return tp_->AllGather(local, -1).narrow(-1, 0, config_.vocab_size).contiguous();
}

Qwen3Model::TokenScores Qwen3Model::ScoreTokens(const at::Tensor& normed,
                                                const at::Tensor& rows_in,
                                                const at::Tensor& targets_in) const {
  TORCH_CHECK(normed.dim() == 2, "ScoreTokens: normed must be [N, hidden]");
  TORCH_CHECK(rows_in.dim() == 1 && targets_in.dim() == 1 &&
                  rows_in.size(0) == targets_in.size(0),
              "ScoreTokens: rows and targets must be [R]");
  const int64_t V = config_.vocab_size;
  TORCH_CHECK(targets_in.numel() == 0 || (targets_in.min().item<int64_t>() >= 0 &&
                                          targets_in.max().item<int64_t>() < V),
              "ScoreTokens: a target is outside the vocabulary of ", V);
  const at::Tensor local = HeadLogits(normed).to(at::kFloat);  // [N, V / W]
  // Indices given on the host go where the logits are.
  const at::Tensor rows = rows_in.to(local.device());
  const at::Tensor targets = targets_in.to(local.device());
  TokenScores out;
  if (tp_->world_size() == 1) {
    out.logsumexp = at::logsumexp(local, -1);
    out.argmax = local.argmax(-1);
    out.target_logit = local.index({rows, targets});
    return out;
  }
  // This rank's shard is vocabulary [begin, begin + valid); the rest of `local` is the zero
  // padding of the last shard.
  const int64_t N = local.size(0), R = rows.size(0), shard = local.size(1);
  const int64_t begin = tp_->rank() * shard;
  const int64_t valid = std::clamp<int64_t>(V - begin, 0, shard);
  const double inf = std::numeric_limits<double>::infinity();
  // One small all-gather of per-row statistics, in double (exact for the float values and for
  // vocabulary indices): [logsumexp, max, first index of max over the shard | target logits].
  const auto f64 = local.options().dtype(at::kDouble);  // on the logits' device (NCCL: CUDA)
  at::Tensor stats = at::full({1, 3 * N + R}, -inf, f64);
  if (valid > 0) {
    const at::Tensor mine = local.narrow(1, 0, valid);
    const auto [top, top_index] = mine.max(-1);
    stats.narrow(1, 0, N).copy_(at::logsumexp(mine, -1).unsqueeze(0));
    stats.narrow(1, N, N).copy_(top.unsqueeze(0));
    stats.narrow(1, 2 * N, N).copy_((top_index + begin).unsqueeze(0));
    const at::Tensor here = (targets >= begin) & (targets < begin + valid);
    const at::Tensor col = (targets - begin).clamp(0, valid - 1);
    stats.narrow(1, 3 * N, R)
        .copy_(at::where(here, mine.index({rows, col}).to(at::kDouble), at::full({}, -inf, f64))
                   .unsqueeze(0));
  }
  const at::Tensor all = tp_->AllGather(stats, 0);  // [W, 3N + R], rank order
  // logsumexp over shards; the largest logit's shard (the first on ties: the lowest index, as
  // argmax over the whole vocabulary); the one shard that holds each target.
  out.logsumexp = at::logsumexp(all.narrow(1, 0, N), 0).to(at::kFloat);
  const at::Tensor best_shard = all.narrow(1, N, N).argmax(0, /*keepdim=*/true);
  out.argmax = all.narrow(1, 2 * N, N).gather(0, best_shard).squeeze(0).to(at::kLong);
  out.target_logit = std::get<0>(all.narrow(1, 3 * N, R).max(0)).to(at::kFloat);
  return out;
}

at::Tensor Qwen3Model::ForwardHidden(const at::Tensor& ids) const {
  return ForwardHidden(ids, MakeRope(ids.size(1)));
}

at::Tensor Qwen3Model::ForwardHidden(const at::Tensor& ids, const RopeTables& rope) const {
  at::Tensor h = Embed(ids);
  for (int64_t i = 0; i < num_layers(); ++i) h = RunLayer(i, h, rope);
  return FinalNorm(h);
}

at::Tensor Qwen3Model::Forward(const at::Tensor& ids) const { return LmHead(ForwardHidden(ids)); }

Linear* Qwen3Model::FindLinear(const std::string& name) {
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return nullptr;
  size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return nullptr;
  int64_t i = -1;
  try {
    i = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  } catch (...) {
    return nullptr;
  }
  if (i < 0 || i >= num_layers()) return nullptr;
  std::string rest = name.substr(dot + 1);
  if (rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".weight") == 0) {
    rest.resize(rest.size() - 7);
  }
  for (auto& [n, lin] : layers_[i].Linears()) {
    if (n == rest) return lin;
  }
  return nullptr;
}

std::vector<std::pair<std::string, at::Tensor>> Qwen3Model::GlobalTensors() const {
  // lazy_globals keeps embed_tokens / lm_head in the stored dtype; callers get the compute dtype.
  const at::ScalarType dt = ToScalarType(dtype_);
  auto compute = [dt](const at::Tensor& t) { return t.scalar_type() == dt ? t : t.to(dt); };
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.push_back({"model.embed_tokens.weight", compute(embed_tokens_)});
  out.push_back({"model.norm.weight", norm_});
  if (!config_.tie_word_embeddings) out.push_back({"lm_head.weight", compute(lm_head_)});
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Qwen3Model::LayerTensors(int64_t i) const {
  TORCH_CHECK(loaded_.at(i), "decoder layer ", i, " is not materialized (lazy model)");
  std::vector<std::pair<std::string, at::Tensor>> out;
  DecoderLayer& l = const_cast<DecoderLayer&>(layers_[i]);
  const std::string p = absl::StrCat("model.layers.", i, ".");
  out.push_back({p + "input_layernorm.weight", l.input_layernorm});
  out.push_back({p + "post_attention_layernorm.weight", l.post_attention_layernorm});
  out.push_back({p + "self_attn.q_norm.weight", l.q_norm});
  out.push_back({p + "self_attn.k_norm.weight", l.k_norm});
  for (auto& [n, lin] : l.Linears()) out.push_back({p + n + ".weight", lin->weight()});
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Qwen3Model::NamedTensors() const {
  auto global = GlobalTensors();
  std::vector<std::pair<std::string, at::Tensor>> out = {global[0]};
  for (int64_t i = 0; i < num_layers(); ++i) {
    auto layer = LayerTensors(i);
    out.insert(out.end(), layer.begin(), layer.end());
  }
  out.insert(out.end(), global.begin() + 1, global.end());
  return out;
}

int64_t Qwen3Model::NumParameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : NamedTensors()) n += t.numel();
  return n;
}

}  // namespace bitsweep::model
