#include "model/qwen3.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "model/safetensors.h"
#include "model/shape_string.h"

namespace bitsweep::model {
namespace {

// Query rows per attention chunk: the causal mask lets chunk [s, e) skip keys >= e, which
// saves about half of the attention FLOPs at long sequence lengths and bounds the score buffer.
constexpr int64_t kAttentionChunk = 256;

at::ScalarType ToScalarType(ComputeDType d) {
  return d == ComputeDType::kBFloat16 ? at::kBFloat16 : at::kFloat;
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

using Getter = Qwen3Model::TensorGetter;

class Builder {
 public:
  // `tp`: the tensor-parallel group (nullptr = whole model). `release`, when set, drops a
  // checkpoint tensor's pages after a shard of it was copied out.
  Builder(const Qwen3Config& c, at::ScalarType dtype, c10::Device device, const Getter& get,
          std::shared_ptr<const Collective> tp = nullptr,
          std::function<void(const std::string&)> release = nullptr)
      : c_(c),
        dtype_(dtype),
        device_(device),
        get_(get),
        tp_(std::move(tp)),
        rank_(tp_ ? tp_->rank() : 0),
        world_(tp_ ? tp_->world_size() : 1),
        release_(std::move(release)) {}

  // Tensor `name` of full shape `shape`; with shard_dim >= 0 under TP, only this rank's equal
  // part of dimension shard_dim.
  // `convert` false (LoadOptions::lazy_globals): the tensor stays in its stored dtype.
  StatusOr<at::Tensor> Take(const std::string& name, std::vector<int64_t> shape,
                            int shard_dim = -1, bool convert = true) {
    ASSIGN_OR_RETURN(at::Tensor t, get_(name));
    if (!t.sizes().equals(shape)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" has shape ", ShapeString(t.sizes()),
                       " but config.json implies ", ShapeString(shape)));
    }
    if (!t.is_floating_point()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" is not floating point"));
    }
    if (shard_dim >= 0 && world_ > 1) {
      const ShardRange r = EvenShard(shape[shard_dim], rank_, world_);
      return Own(name, t, t.narrow(shard_dim, r.begin, r.size)).to(device_);
    }
    if (world_ > 1) return Own(name, t, t).to(device_);
    // Stored dtype kept (lazy_globals): stays where it is, memory-mapped on the host.
    if (!convert) return t.contiguous();
    // Same dtype on the CPU: keep the (possibly memory-mapped) tensor as is; otherwise convert
    // once (and copy to the device).
    return (t.scalar_type() == dtype_ ? t.contiguous() : t.to(dtype_).contiguous()).to(device_);
  }

  // The vocabulary-parallel shard of an lm_head-shaped [V, H] tensor: rows
  // [r*S, min(V, (r+1)*S)) with S = ceil(V/W), zero-padded to S rows.
  at::Tensor VocabShard(const at::Tensor& full) const {
    const int64_t V = full.size(0), S = (V + world_ - 1) / world_;
    const int64_t begin = std::min(V, rank_ * S), end = std::min(V, begin + S);
    at::Tensor rows = full.narrow(0, begin, end - begin);
    if (end - begin == S) return rows;
    at::Tensor padded = at::zeros({S, full.size(1)}, full.options());
    padded.narrow(0, 0, end - begin).copy_(rows);
    return padded;
  }

  StatusOr<at::Tensor> TakeVocabShard(const std::string& name, int64_t V, int64_t H,
                                      bool convert = true) {
    ASSIGN_OR_RETURN(at::Tensor full, Take(name, {V, H}, -1, convert));
    return world_ > 1 ? VocabShard(full).contiguous() : full;
  }

  // `reduce`: a row-parallel linear all-reduces its output (false: it stays a partial sum that
  // the caller reduces, as the MoE block does once for all its experts).
  StatusOr<Linear> TakeLinear(const std::string& name, int64_t out, int64_t in,
                              ParallelStyle style = ParallelStyle::kReplicated,
                              bool reduce = true) {
    if (world_ == 1) style = ParallelStyle::kReplicated;
    const int dim = style == ParallelStyle::kColumn ? 0 : style == ParallelStyle::kRow ? 1 : -1;
    ASSIGN_OR_RETURN(at::Tensor w, Take(name + ".weight", {out, in}, dim));
    return Linear(std::move(w), style, style == ParallelStyle::kRow && reduce ? tp_ : nullptr);
  }

  StatusOr<Mlp> TakeMlp(const std::string& prefix, int64_t width, bool reduce) {
    Mlp m;
    const int64_t h = c_.hidden_size;
    ASSIGN_OR_RETURN(m.gate_proj,
                     TakeLinear(prefix + "gate_proj", width, h, ParallelStyle::kColumn));
    ASSIGN_OR_RETURN(m.up_proj, TakeLinear(prefix + "up_proj", width, h, ParallelStyle::kColumn));
    ASSIGN_OR_RETURN(m.down_proj,
                     TakeLinear(prefix + "down_proj", h, width, ParallelStyle::kRow, reduce));
    return m;
  }

  StatusOr<DecoderLayer> TakeLayer(int64_t i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    const int64_t h = c_.hidden_size;
    DecoderLayer l;
    ASSIGN_OR_RETURN(l.input_layernorm, Take(p + "input_layernorm.weight", {h}));
    ASSIGN_OR_RETURN(l.post_attention_layernorm, Take(p + "post_attention_layernorm.weight", {h}));
    ASSIGN_OR_RETURN(l.q_norm, Take(p + "self_attn.q_norm.weight", {c_.head_dim}));
    ASSIGN_OR_RETURN(l.k_norm, Take(p + "self_attn.k_norm.weight", {c_.head_dim}));
    const auto col = ParallelStyle::kColumn;
    ASSIGN_OR_RETURN(l.q_proj, TakeLinear(p + "self_attn.q_proj", c_.q_dim(), h, col));
    ASSIGN_OR_RETURN(l.k_proj, TakeLinear(p + "self_attn.k_proj", c_.kv_dim(), h, col));
    ASSIGN_OR_RETURN(l.v_proj, TakeLinear(p + "self_attn.v_proj", c_.kv_dim(), h, col));
    ASSIGN_OR_RETURN(l.o_proj,
                     TakeLinear(p + "self_attn.o_proj", h, c_.q_dim(), ParallelStyle::kRow));
    if (c_.IsMoeLayer(i)) {
      MoeBlock moe;
      moe.top_k = c_.num_experts_per_tok;
      moe.norm_topk_prob = c_.norm_topk_prob;
      if (world_ > 1) moe.collective = tp_;
      ASSIGN_OR_RETURN(moe.gate, TakeLinear(p + "mlp.gate", c_.num_experts, h));
      for (int64_t e = 0; e < c_.num_experts; ++e) {
        ASSIGN_OR_RETURN(Mlp m, TakeMlp(absl::StrCat(p, "mlp.experts.", e, "."),
                                        c_.moe_intermediate_size, /*reduce=*/false));
        moe.experts.push_back(std::move(m));
      }
      l.moe = std::move(moe);
    } else {
      ASSIGN_OR_RETURN(Mlp m, TakeMlp(p + "mlp.", c_.intermediate_size, /*reduce=*/true));
      l.mlp = std::move(m);
    }
    return l;
  }

 private:
  // A shard owned by this process in the compute dtype; the source's pages are released when
  // the shard had to be copied out of them.
  at::Tensor Own(const std::string& name, const at::Tensor& source, const at::Tensor& shard) {
    at::Tensor out =
        shard.scalar_type() == dtype_ ? shard.contiguous() : shard.to(dtype_).contiguous();
    if (release_ && !out.is_alias_of(source)) release_(name);
    return out;
  }

  const Qwen3Config& c_;
  at::ScalarType dtype_;
  c10::Device device_;
  const Getter& get_;
  std::shared_ptr<const Collective> tp_;
  int rank_, world_;
  std::function<void(const std::string&)> release_;
};

at::Tensor Attention(const DecoderLayer& l, const Qwen3Config& c, const at::Tensor& x,
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
  const bool tree = rope.visible_end.defined();
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
      at::Tensor end = rope.visible_end.narrow(1, 0, e);  // [B, e]
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
      // Key j is visible to query i iff j <= i < visible_end[j].
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
  at::Tensor ctx = out.permute({0, 3, 1, 2, 4}).reshape({B, T, n_heads * hd});
  return l.o_proj.Forward(ctx);
}

}  // namespace

StatusOr<ComputeDType> ParseComputeDType(const std::string& name) {
  if (name == "fp32" || name == "float32") return ComputeDType::kFloat32;
  if (name == "bf16" || name == "bfloat16") return ComputeDType::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown compute dtype \"", name, "\" (expected fp32 or bf16)"));
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

at::Tensor Mlp::Forward(const at::Tensor& x) const {
  return down_proj.Forward(at::silu(gate_proj.Forward(x)) * up_proj.Forward(x));
}

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

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::Load(const std::string& dir,
                                                       const LoadOptions& options) {
  ASSIGN_OR_RETURN(Qwen3Config config, LoadQwen3Config(dir));
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> opened, Checkpoint::Open(dir));
  std::shared_ptr<const Checkpoint> ck(std::move(opened));
  const at::ScalarType dtype = ToScalarType(options.dtype);
  // Under TP the builder narrows the mapped tensor to this rank's shard before converting it,
  // so a rank reads and converts only its shard.
  const bool sharded = options.tp && options.tp->world_size() > 1;
  // lazy_globals: the embeddings and lm_head are handed over as mapped, in the stored dtype.
  const bool keep_globals = options.lazy_globals && !sharded;
  TensorGetter get = [ck, dtype, sharded,
                      keep_globals](const std::string& name) -> StatusOr<at::Tensor> {
    if (!ck->Has(name)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor \"", name, "\""));
    }
    const bool global = name == "model.embed_tokens.weight" || name == "lm_head.weight";
    return sharded || (keep_globals && global) ? ck->Load(name) : ck->LoadAs(name, dtype);
  };
  std::function<void(const std::string&)> release = [ck](const std::string& name) {
    ck->ReleasePages(name);
  };
  auto model = Build(config, options, get, sharded ? release : nullptr);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(dir, ": ", model.status().message()));
  }
  (*model)->source_ = dir;
  if (options.lazy_layers) {
    (*model)->lazy_get_ = std::move(get);
    (*model)->release_ = release;
  }
  return model;
}

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::FromTensors(
    const Qwen3Config& config, const std::map<std::string, at::Tensor>& tensors,
    const LoadOptions& options) {
  RETURN_IF_ERROR(config.Validate());
  return Build(config, options, [&tensors](const std::string& name) -> StatusOr<at::Tensor> {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("missing tensor \"", name, "\""));
    }
    return it->second;
  });
}

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::FromSource(const Qwen3Config& config,
                                                             const TensorSource& get,
                                                             const LoadOptions& options) {
  RETURN_IF_ERROR(config.Validate());
  ASSIGN_OR_RETURN(auto model, Build(config, options, get));
  if (options.lazy_layers) model->lazy_get_ = get;
  return model;
}

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::Build(
    const Qwen3Config& config, const LoadOptions& options, const TensorGetter& get,
    const std::function<void(const std::string&)>& release) {
  auto model = std::unique_ptr<Qwen3Model>(new Qwen3Model());
  model->config_ = config;
  model->dtype_ = options.dtype;
  model->device_ = options.device;
  model->tp_ = options.tp ? options.tp : SingleProcessCollective();
  if (model->tp_->world_size() > 1) {
    RETURN_IF_ERROR(ValidateTensorParallel(config, model->tp_->world_size()));
  }
  try {
    Builder b(model->config_, ToScalarType(options.dtype), options.device, get, model->tp_,
              release);
    const int64_t V = config.vocab_size, H = config.hidden_size;
    const bool convert = !options.lazy_globals || model->tp_->world_size() > 1;
    ASSIGN_OR_RETURN(model->embed_tokens_,
                     b.Take("model.embed_tokens.weight", {V, H}, -1, convert));
    ASSIGN_OR_RETURN(model->norm_, b.Take("model.norm.weight", {H}));
    if (config.tie_word_embeddings) {
      model->lm_head_ = model->tp_->world_size() > 1
                            ? b.VocabShard(model->embed_tokens_).contiguous()
                            : model->embed_tokens_;
    } else {
      ASSIGN_OR_RETURN(model->lm_head_, b.TakeVocabShard("lm_head.weight", V, H, convert));
    }
    model->layers_.resize(config.num_hidden_layers);
    model->loaded_.assign(config.num_hidden_layers, !options.lazy_layers);
    if (!options.lazy_layers) {
      for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
        ASSIGN_OR_RETURN(model->layers_[i], b.TakeLayer(i));
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("building the model: ", e.what_without_backtrace()));
  }
  return model;
}

at::Tensor Qwen3Model::Embed(const at::Tensor& ids) const {
  at::Tensor rows = at::embedding(embed_tokens_, ids.to(embed_tokens_.device()));
  // lazy_globals: only the selected rows are converted (and copied to the device).
  return rows.to(device_, ToScalarType(dtype_));
}

namespace {
// RoPE tables for integer positions of any shape: [..., head_dim]. HF computes
// inv_freq = 1 / theta^(arange(0, hd, 2) / hd) and the angles in fp32.
RopeTables RopeForPositions(const Qwen3Config& c, at::ScalarType dt, const at::Tensor& positions) {
  const int64_t hd = c.head_dim;
  at::Tensor exponent = at::arange(0, hd, 2, at::kLong).to(at::kFloat) / static_cast<double>(hd);
  at::Tensor inv_freq = 1.0 / at::pow(at::Scalar(c.rope_theta), exponent);
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dt), emb.sin().to(dt), at::Tensor()};
}
}  // namespace

// The tables are computed on the host (the same numbers on every device) and copied over.
RopeTables Qwen3Model::MakeRope(int64_t seq_len) const {
  RopeTables t = RopeForPositions(config_, ToScalarType(dtype_), at::arange(seq_len, at::kLong));
  return {t.cos.to(device_), t.sin.to(device_), at::Tensor()};
}

RopeTables Qwen3Model::MakeRope(const at::Tensor& positions) const {
  TORCH_CHECK(positions.dim() == 2, "MakeRope: positions must be [B, T]");
  RopeTables t = RopeForPositions(config_, ToScalarType(dtype_), positions.cpu());
  return {t.cos.to(device_), t.sin.to(device_), at::Tensor()};
}

Status Qwen3Model::MaterializeLayer(int64_t i) {
  if (i < 0 || i >= num_layers()) {
    return absl::OutOfRangeError(absl::StrCat("layer ", i, " of ", num_layers()));
  }
  return LoadLayer(i);
}

Status Qwen3Model::LoadLayer(int64_t i) const {
  if (loaded_[i]) return absl::OkStatus();
  try {
    Builder b(config_, ToScalarType(dtype_), device_, lazy_get_, tp_,
              tp_->world_size() > 1 ? release_ : nullptr);
    auto layer = b.TakeLayer(i);
    if (!layer.ok()) {
      return absl::Status(layer.status().code(),
                          absl::StrCat(source_, ": ", layer.status().message()));
    }
    layers_[i] = std::move(layer).value();
    for (const LayerSetup& setup : layer_setups_) setup(i, layers_[i]);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(source_, ": loading layer ", i, ": ", e.what_without_backtrace()));
  }
  loaded_[i] = true;
  return absl::OkStatus();
}

void Qwen3Model::ReleaseLayer(int64_t i) { DropLayer(i); }

void Qwen3Model::DropLayer(int64_t i) const {
  if (!loaded_.at(i) || !lazy_get_) return;
  if (release_) {
    for (const auto& [name, t] : LayerTensors(i)) release_(name);
  }
  layers_[i] = DecoderLayer();
  loaded_[i] = false;
}

void Qwen3Model::AddLayerSetup(LayerSetup setup) {
  for (int64_t i = 0; i < num_layers(); ++i) {
    if (loaded_[i]) setup(i, layers_[i]);
  }
  layer_setups_.push_back(std::move(setup));
}

Status Qwen3Model::RunLayers(std::vector<at::Tensor>& hiddens,
                             const std::vector<RopeTables>& ropes) const {
  if (hiddens.size() != ropes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("RunLayers: ", hiddens.size(),
                                                   " batches but ", ropes.size(), " rope tables"));
  }
  for (int64_t i = 0; i < num_layers(); ++i) {
    const bool read_here = !loaded_[i];  // only a layer read here is dropped here
    RETURN_IF_ERROR(LoadLayer(i));
    for (size_t b = 0; b < hiddens.size(); ++b) hiddens[b] = RunLayer(i, hiddens[b], ropes[b]);
    if (read_here) DropLayer(i);
  }
  return absl::OkStatus();
}

at::Tensor Qwen3Model::RunLayer(int64_t i, const at::Tensor& hidden, const RopeTables& rope) const {
  TORCH_CHECK(loaded_.at(i), "decoder layer ", i, " is not materialized (lazy model)");
  const DecoderLayer& l = layers_.at(i);
  const double eps = config_.rms_norm_eps;
  at::Tensor h = hidden + Attention(l, config_, RmsNorm(hidden, l.input_layernorm, eps), rope);
  at::Tensor x = RmsNorm(h, l.post_attention_layernorm, eps);
  return h + (l.moe ? l.moe->Forward(x) : l.mlp->Forward(x));
}

at::Tensor Qwen3Model::SelfAttention(int64_t i, const at::Tensor& normed,
                                     const RopeTables& rope) const {
  return Attention(layers_.at(i), config_, normed, rope);
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

namespace {
at::Tensor GatherLinear(const Collective& tp, const Linear& lin) {
  switch (lin.style()) {
    case ParallelStyle::kColumn:
      return tp.AllGather(lin.weight(), 0);
    case ParallelStyle::kRow:
      return tp.AllGather(lin.weight(), 1);
    case ParallelStyle::kReplicated:
      break;
  }
  return lin.weight();
}
}  // namespace

std::vector<std::pair<std::string, at::Tensor>> Qwen3Model::FullGlobalTensors() const {
  if (tp_->world_size() == 1) return GlobalTensors();
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.push_back({"model.embed_tokens.weight", embed_tokens_});
  out.push_back({"model.norm.weight", norm_});
  if (!config_.tie_word_embeddings) {
    out.push_back({"lm_head.weight", tp_->AllGather(lm_head_, 0).narrow(0, 0, config_.vocab_size)});
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Qwen3Model::FullLayerTensors(int64_t i) const {
  if (tp_->world_size() == 1) return LayerTensors(i);
  auto out = LayerTensors(i);
  auto linears = const_cast<DecoderLayer&>(layers_.at(i)).Linears();
  // LayerTensors lists the four norms, then the linears in Linears() order.
  for (size_t k = 0; k < linears.size(); ++k)
    out[4 + k].second = GatherLinear(*tp_, *linears[k].second);
  return out;
}

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::GatherLayer(int64_t i) const {
  const auto tensors = FullLayerTensors(i);
  const std::map<std::string, at::Tensor> named(tensors.begin(), tensors.end());
  auto whole = std::unique_ptr<Qwen3Model>(new Qwen3Model());
  whole->config_ = config_;
  whole->dtype_ = dtype_;
  whole->device_ = device_;
  whole->tp_ = SingleProcessCollective();
  whole->embed_tokens_ = embed_tokens_;
  whole->norm_ = norm_;
  whole->layers_.resize(layers_.size());
  whole->loaded_.assign(layers_.size(), false);
  TensorGetter get = [&named](const std::string& name) -> StatusOr<at::Tensor> {
    auto it = named.find(name);
    if (it == named.end()) return absl::InternalError("GatherLayer: no tensor " + name);
    return it->second;
  };
  try {
    Builder b(config_, ToScalarType(dtype_), device_, get);
    ASSIGN_OR_RETURN(whole->layers_[i], b.TakeLayer(i));
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("gathering layer ", i, ": ", e.what_without_backtrace()));
  }
  whole->loaded_[i] = true;
  return whole;
}

Status Qwen3Model::ScatterLayer(int64_t i, const Qwen3Model& whole) {
  DecoderLayer& l = layers_.at(i);
  DecoderLayer& w = const_cast<DecoderLayer&>(whole.layers_.at(i));
  l.input_layernorm = w.input_layernorm;
  l.post_attention_layernorm = w.post_attention_layernorm;
  l.q_norm = w.q_norm;
  l.k_norm = w.k_norm;
  auto mine = l.Linears();
  auto theirs = w.Linears();
  if (mine.size() != theirs.size()) return absl::InternalError("ScatterLayer: layer mismatch");
  const int rank = tp_->rank(), world = tp_->world_size();
  try {
    for (size_t k = 0; k < mine.size(); ++k) {
      Linear& a = *mine[k].second;
      const at::Tensor& full = theirs[k].second->weight();
      switch (a.style()) {
        case ParallelStyle::kColumn: {
          const ShardRange r = EvenShard(full.size(0), rank, world);
          a.SetWeight(full.narrow(0, r.begin, r.size));
          break;
        }
        case ParallelStyle::kRow: {
          const ShardRange r = EvenShard(full.size(1), rank, world);
          a.SetWeight(full.narrow(1, r.begin, r.size));
          break;
        }
        case ParallelStyle::kReplicated:
          a.SetWeight(full);
          break;
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("scattering layer ", i, ": ", e.what()));
  }
  return absl::OkStatus();
}

Status ValidateTensorParallel(const Qwen3Config& c, int world) {
  if (world < 1) {
    return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", world, " < 1"));
  }
  bool dense = false, moe = false;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) (c.IsMoeLayer(i) ? moe : dense) = true;
  const std::vector<std::pair<const char*, int64_t>> dims = {
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", dense ? c.intermediate_size : 0},
      {"moe_intermediate_size", moe ? c.moe_intermediate_size : 0}};
  for (const auto& [name, value] : dims) {
    if (value % world != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor-parallel size ", world, " does not divide ", name, " = ", value,
          name == std::string("num_key_value_heads")
              ? " (KV heads are sharded, not replicated: choose a size that divides it)"
              : ""));
    }
  }
  return absl::OkStatus();
}

int64_t Qwen3Model::NumParameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : NamedTensors()) n += t.numel();
  return n;
}

}  // namespace bitsweep::model
