// Internal to model/: the builder that reads a Qwen3Model's tensors from a source (the loader
// in qwen3_load.cc and GatherLayer in qwen3_tp.cc use it). Not part of the model's interface.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/device_upload.h"
#include "model/qwen3.h"
#include "model/shape_string.h"

namespace bitsweep::model::internal {

using Getter = Qwen3Model::TensorGetter;

// Builds decoder layers and the global tensors of a Qwen3Model from a tensor source: checks
// every shape against the config, takes this rank's shard under tensor parallelism, converts
// to the compute dtype and places on the model's device.
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

  // Linear weights keep their stored dtype (LoadOptions::stored_linear_weights).
  void keep_stored_linears(bool keep) { stored_linears_ = keep; }
  // Copies to a CUDA device go through `uploader` (pinned staging, asynchronous on its side
  // stream; the caller runs the builder inside uploader->OnSideStream). nullptr: plain copies.
  void upload_with(DeviceUploader* uploader) { uploader_ = uploader; }

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
      return Own(name, t, t.narrow(shard_dim, r.begin, r.size));
    }
    if (world_ > 1) return Own(name, t, t);
    // Stored dtype kept (lazy_globals): stays where it is, memory-mapped on the host.
    if (!convert) return t.contiguous();
    // A CUDA device: copied over in the stored dtype and converted there (elementwise, so the
    // same values as converting on the host, with half the bytes to copy from bf16).
    if (device_.is_cuda()) return ToDevice(t).to(dtype_);
    // Same dtype on the CPU: keep the (possibly memory-mapped) tensor as is; otherwise convert
    // once.
    return t.scalar_type() == dtype_ ? t.contiguous() : t.to(dtype_).contiguous();
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
    if (stored_linears_ && world_ == 1) {  // LoadOptions::stored_linear_weights
      ASSIGN_OR_RETURN(at::Tensor w, Take(name + ".weight", {out, in}, -1, /*convert=*/false));
      return Linear(ToDevice(w), style, nullptr);
    }
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
  // `host` on the model's device, in its own dtype (contiguous).
  at::Tensor ToDevice(const at::Tensor& host) {
    if (!device_.is_cuda()) return host.contiguous().to(device_);
    return uploader_ ? uploader_->Upload(host) : host.contiguous().to(device_);
  }

  // A shard owned by this process in the compute dtype, on the model's device; the source's
  // pages are released when the shard had to be copied out of them.
  at::Tensor Own(const std::string& name, const at::Tensor& source, const at::Tensor& shard) {
    at::Tensor out;
    if (device_.is_cuda()) {
      out = ToDevice(shard).to(dtype_);
    } else {
      out = shard.scalar_type() == dtype_ ? shard.contiguous() : shard.to(dtype_).contiguous();
    }
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
  bool stored_linears_ = false;
  DeviceUploader* uploader_ = nullptr;
};

}  // namespace bitsweep::model::internal
