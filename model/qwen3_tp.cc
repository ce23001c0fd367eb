// Qwen3Model under tensor parallelism: gathering shards into whole tensors and layers,
// scattering a whole layer back, and which sizes a world divides (layout: model/qwen3.h).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/qwen3_builder.h"

namespace bitsweep::model {

using internal::Builder;

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

}  // namespace bitsweep::model
