// Qwen3Model's loading and layer streaming: Load / FromTensors / FromSource build the model
// from a checkpoint or a tensor source; a lazy model reads its decoder layers on demand
// (MaterializeLayer, RunLayers) and drops them again.
#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "model/device_upload.h"
#include "model/qwen3.h"
#include "model/qwen3_builder.h"
#include "model/safetensors.h"

namespace bitsweep::model {

using internal::Builder;

// A decoder layer read on the loader thread, with the fence after its copies.
struct Qwen3Model::Prefetch {
  struct Read {
    DecoderLayer layer;
    UploadFence fence;
  };
  int64_t index = -1;
  std::future<StatusOr<Read>> result;
};

Qwen3Model::Qwen3Model() = default;
Qwen3Model::~Qwen3Model() = default;

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
  // stored_linear_weights: every tensor is handed over mapped; the builder converts all but
  // the decoder layers' linears.
  const bool keep_linears = options.stored_linear_weights && !sharded;
  // On a GPU every tensor is copied over as stored and converted there.
  const bool on_gpu = options.device.is_cuda();
  TensorGetter get = [ck, dtype, sharded, keep_globals, keep_linears,
                      on_gpu](const std::string& name) -> StatusOr<at::Tensor> {
    if (!ck->Has(name)) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor \"", name, "\""));
    }
    // Stored dtype: the builder converts what it does not keep (the same values as LoadAs).
    const bool global = name == "model.embed_tokens.weight" || name == "lm_head.weight";
    const bool keep = sharded || keep_linears || on_gpu || (keep_globals && global);
    return keep ? ck->Load(name) : ck->LoadAs(name, dtype);
  };
  std::function<void(const std::string&)> release = [ck](const std::string& name) {
    ck->ReleasePages(name);
  };
  LoadOptions built = options;
  built.stored_linear_weights = keep_linears;
  auto model = Build(config, built, get, sharded ? release : nullptr);
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(dir, ": ", model.status().message()));
  }
  (*model)->source_ = dir;
  if (options.lazy_layers) {
    (*model)->lazy_get_ = std::move(get);
    (*model)->release_ = release;
    (*model)->prefetch_ = options.prefetch_layers;
    if (options.prefetch_layers && options.device.is_cuda()) {
      (*model)->uploader_ = std::make_unique<DeviceUploader>(options.device);
    }
  }
  return model;
}

StatusOr<std::unique_ptr<Qwen3Model>> Qwen3Model::FromTensors(
    const Qwen3Config& config, const std::map<std::string, at::Tensor>& tensors,
    const LoadOptions& options) {
  RETURN_IF_ERROR(config.Validate());
  LoadOptions built = options;
  built.stored_linear_weights = false;  // Load only
  return Build(config, built, [&tensors](const std::string& name) -> StatusOr<at::Tensor> {
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
  LoadOptions built = options;
  built.stored_linear_weights = false;  // Load only
  ASSIGN_OR_RETURN(auto model, Build(config, built, get));
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
  model->stored_linears_ = options.stored_linear_weights;
  model->tp_ = options.tp ? options.tp : SingleProcessCollective();
  if (model->tp_->world_size() > 1) {
    RETURN_IF_ERROR(ValidateTensorParallel(config, model->tp_->world_size()));
  }
  try {
    Builder b(model->config_, ToScalarType(options.dtype), options.device, get, model->tp_,
              release);
    b.keep_stored_linears(options.stored_linear_weights);
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

Status Qwen3Model::MaterializeLayer(int64_t i) {
  if (i < 0 || i >= num_layers()) {
    return absl::OutOfRangeError(absl::StrCat("layer ", i, " of ", num_layers()));
  }
  return LoadLayer(i);
}

Status Qwen3Model::ReadLayer(int64_t i, DeviceUploader* uploader, DecoderLayer& out) const {
  try {
    Builder b(config_, ToScalarType(dtype_), device_, lazy_get_, tp_,
              tp_->world_size() > 1 ? release_ : nullptr);
    b.keep_stored_linears(stored_linears_);
    b.upload_with(uploader);
    auto layer = b.TakeLayer(i);
    if (!layer.ok()) {
      return absl::Status(layer.status().code(),
                          absl::StrCat(source_, ": ", layer.status().message()));
    }
    out = std::move(layer).value();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(source_, ": loading layer ", i, ": ", e.what_without_backtrace()));
  }
  return absl::OkStatus();
}

Status Qwen3Model::AdoptLayer(int64_t i, DecoderLayer layer) const {
  layers_[i] = std::move(layer);
  try {
    for (const LayerSetup& setup : layer_setups_) setup(i, layers_[i]);
  } catch (const c10::Error& e) {
    layers_[i] = DecoderLayer();
    return absl::InternalError(
        absl::StrCat(source_, ": loading layer ", i, ": ", e.what_without_backtrace()));
  }
  loaded_[i] = true;
  return absl::OkStatus();
}

Status Qwen3Model::LoadLayer(int64_t i) const {
  if (loaded_[i]) return absl::OkStatus();
  if (prefetch_pending_ && prefetch_pending_->index == i) return FinishPrefetch();
  DecoderLayer layer;
  RETURN_IF_ERROR(ReadLayer(i, nullptr, layer));
  return AdoptLayer(i, std::move(layer));
}

void Qwen3Model::StartPrefetch(int64_t i) const {
  if (loaded_[i] || prefetch_pending_) return;
  auto pending = std::make_unique<Prefetch>();
  pending->index = i;
  DeviceUploader* uploader = uploader_.get();
  // The thread touches only the const state a read needs (config, getter, source); the layer
  // cache is changed on the caller's thread, in FinishPrefetch.
  auto read_layer = [this, i, uploader]() -> StatusOr<Prefetch::Read> {
    Prefetch::Read read;
    Status status;
    if (uploader == nullptr) {
      status = ReadLayer(i, nullptr, read.layer);
    } else {
      uploader->OnSideStream([&] { status = ReadLayer(i, uploader, read.layer); });
      read.fence = uploader->Record();
    }
    if (!status.ok()) return status;
    return read;
  };
  pending->result = std::async(std::launch::async, std::move(read_layer));
  prefetch_pending_ = std::move(pending);
}

Status Qwen3Model::FinishPrefetch() const {
  const std::unique_ptr<Prefetch> pending = std::move(prefetch_pending_);
  StatusOr<Prefetch::Read> read = pending->result.get();
  if (!read.ok()) return read.status();
  // The calling thread's stream waits for the copies before any kernel reads the layer.
  DecoderLayer& l = read->layer;
  std::vector<at::Tensor> tensors = {l.input_layernorm, l.post_attention_layernorm, l.q_norm,
                                     l.k_norm};
  for (auto& [name, linear] : l.Linears()) tensors.push_back(linear->weight());
  read->fence.HandOver(tensors);
  return AdoptLayer(pending->index, std::move(l));
}

void Qwen3Model::ReleaseLayer(int64_t i) { DropLayer(i); }

void Qwen3Model::PrefetchLayer(int64_t i) {
  if (prefetch_ && lazy() && i >= 0 && i < num_layers()) StartPrefetch(i);
}

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
    // The next layer is read while this one runs (its error, if any, comes when it is needed).
    if (prefetch_ && lazy() && i + 1 < num_layers()) StartPrefetch(i + 1);
    for (size_t b = 0; b < hiddens.size(); ++b) hiddens[b] = RunLayer(i, hiddens[b], ropes[b]);
    if (read_here) DropLayer(i);
  }
  return absl::OkStatus();
}

}  // namespace bitsweep::model
