// The Qwen3 model (dense and MoE) in libtorch, following Hugging Face's modeling_qwen3.py and
// modeling_qwen3_moe.py: h = embed[ids]; every decoder layer (model/qwen3_layer.h) updates h;
// logits = lm_head(RMSNorm(h)), lm_head tied to embed when tie_word_embeddings.
//
// Shapes: ids [B, T] int64; hidden [B, T, hidden]; logits [B, T, vocab]. Batches are right
// padded: with causal attention a real token never attends to a later (padding) position, so
// the logits of real tokens do not depend on padding and no attention mask is needed.
// Positions are 0..T-1 for every row.
//
// Compute dtype is fp32 or bf16 (every op in that dtype, as HF does with torch_dtype; RMSNorm
// statistics and softmax in fp32). Weights whose stored dtype equals the compute dtype alias the
// checkpoint's memory map; others are converted once at load.
//
// Tensor parallelism (LoadOptions::tp, a Collective of W ranks; Megatron-LM's layout): each
// rank holds 1/W of every decoder layer and reads only its shard from the checkpoint.
//   q/k/v_proj, gate/up_proj   column-parallel: rows of W (whole heads: rank r runs query heads
//                              [r*nh/W, ...) and their KV heads [r*nkv/W, ...); MLP columns)
//   o_proj, down_proj          row-parallel: the matching input columns; the partial outputs
//                              are summed by one all-reduce (per MoE block, not per expert)
//   MoE experts                every expert sharded like the dense MLP; the router replicated
//   lm_head                    vocabulary-parallel: rows [r*ceil(V/W), ...), logits gathered
//   embed_tokens, norms        replicated
// W must divide the attention heads, the KV heads (they are not replicated), the MLP widths and
// hidden_size (ValidateTensorParallel says which does not). Hidden states are replicated: every
// rank calls the same forward on the same input and gets the same output, up to the order of
// the all-reduce's sums (logits within ~1e-6 relative in fp32).
//
// Quantization calibrates layer by layer, so the model exposes Embed / RunLayer / Head and every
// Linear by its Hugging Face module name. Forward functions build autograd graphs unless the
// caller holds an InferenceMode guard (the evaluator does; the trainer needs gradients).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/linear.h"
#include "model/qwen3_config.h"
#include "model/qwen3_layer.h"

namespace bitsweep::model {

class Checkpoint;
class DeviceUploader;

// lm_head rows converted to the compute dtype at a time under LoadOptions::lazy_globals
// (8192 x 4096 fp32 = 128 MiB for Qwen3-8B).
constexpr int64_t kLmHeadChunkRows = 8192;

struct LoadOptions {
  ComputeDType dtype = ComputeDType::kFloat32;
  // Where the weights live and the forward runs (model/device.h resolves "cpu", "cuda:N",
  // "auto"). Inputs may be given on the CPU: Embed, MakeRope and ScoreTokens move what they
  // take to this device, and every tensor the forward creates is made on it. Under
  // lazy_globals the embeddings and lm_head stay memory-mapped on the host and only the rows
  // or chunks in use are copied over.
  c10::Device device = c10::Device(c10::kCPU);
  // Decoder layers are not read at load: MaterializeLayer(i) reads layer i and ReleaseLayer(i)
  // drops it again (with its mapped checkpoint pages), so a driver that visits the layers in
  // order holds about one layer at a time (the quantizer streams models this way). Running a
  // layer that is not materialized throws c10::Error naming it. Only Load honours this.
  bool lazy_layers = false;
  // With lazy_layers: RunLayers reads layer i + 1 on a loader thread while layer i runs, so at
  // most two decoder layers are in memory instead of one. On CUDA the loader stages the weights
  // in pinned host memory and copies them on a side stream (model/device_upload.h), overlapping
  // the copies with layer i's kernels; the compute stream waits on an event before layer i + 1.
  // The results are the same bit for bit. Load only.
  bool prefetch_layers = false;
  // embed_tokens and lm_head stay as the checkpoint stores them (memory-mapped: file pages, not
  // anonymous memory) and are converted to the compute dtype where they are used: the rows that
  // Embed selects, and lm_head one vocabulary chunk at a time (ScoreTokens, LmHead). The values
  // are those of the converted tensors (conversion is elementwise). GlobalTensors() still
  // returns them in the compute dtype. Ignored under tensor parallelism. Load and FromSource.
  bool lazy_globals = false;
  // The decoder layers' linear weights stay as the checkpoint stores them (memory-mapped: file
  // pages, not anonymous memory; copied as they are to a CUDA device) instead of being
  // converted to the compute dtype. For drivers that read the weights but never run the
  // layers (a quantizer that converts each weight itself); a forward over such a layer in
  // another dtype fails. The norms are converted as usual. Load only; ignored under tensor
  // parallelism.
  bool stored_linear_weights = false;
  // Tensor parallelism: this process is rank tp->rank() of tp->world_size() and loads only its
  // shard (layout above). nullptr: the whole model.
  std::shared_ptr<const Collective> tp;
};

// INVALID_ARGUMENT naming the dimension a tensor-parallel size `world` does not divide.
Status ValidateTensorParallel(const Qwen3Config& config, int world);

class Qwen3Model {
 public:
  // Loads config.json and the safetensors weights from a Hugging Face model directory.
  static StatusOr<std::unique_ptr<Qwen3Model>> Load(const std::string& dir,
                                                    const LoadOptions& options = {});
  ~Qwen3Model();
  // Builds a model from named tensors in HF naming (tests, the trainer, tiny checkpoints).
  static StatusOr<std::unique_ptr<Qwen3Model>> FromTensors(
      const Qwen3Config& config, const std::map<std::string, at::Tensor>& tensors,
      const LoadOptions& options = {});

  // Builds a model from any tensor source (e.g. a packed quantized checkpoint that dequantizes
  // on the fly); each tensor is converted to the compute dtype.
  using TensorSource = std::function<StatusOr<at::Tensor>(const std::string& name)>;
  static StatusOr<std::unique_ptr<Qwen3Model>> FromSource(const Qwen3Config& config,
                                                          const TensorSource& get,
                                                          const LoadOptions& options = {});

  const Qwen3Config& config() const { return config_; }
  ComputeDType dtype() const { return dtype_; }
  c10::Device device() const { return device_; }
  // The tensor-parallel group (a world of one when the model is whole); never null.
  const std::shared_ptr<const Collective>& tp() const { return tp_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

  at::Tensor Embed(const at::Tensor& ids) const;           // [B,T] -> [B,T,hidden]
  RopeTables MakeRope(int64_t seq_len) const;              // for positions 0..seq_len-1
  RopeTables MakeRope(const at::Tensor& positions) const;  // [B, T] int64 positions
  // One decoder layer: [B,T,hidden] -> [B,T,hidden].
  at::Tensor RunLayer(int64_t i, const at::Tensor& hidden, const RopeTables& rope) const;
  // The attention sub-block of layer i (HF's self_attn: q/k/v, q/k norms, RoPE, causal GQA
  // attention, o_proj) on its normed input, without the residual: [B,T,hidden] -> [B,T,hidden].
  // Activation-scaling quantizers match this module's output when they scale q/k/v.
  at::Tensor SelfAttention(int64_t i, const at::Tensor& normed, const RopeTables& rope) const;
  at::Tensor FinalNorm(const at::Tensor& hidden) const;  // model.norm
  at::Tensor LmHead(const at::Tensor& normed) const;     // [..., hidden] -> [..., vocab]
  // What scoring needs of the next-token distribution, without the whole vocabulary's logits on
  // any rank: under tensor parallelism each rank reduces its own vocabulary shard and only
  // per-row statistics cross ranks (vocabulary-parallel log-softmax), instead of all-gathering
  // [N, vocab] logits. normed: [N, hidden]; rows, targets: [R] int64 (target token targets[r] of
  // row rows[r]; a row may appear several times). All in fp32 from the compute-dtype logits, as
  // LmHead(normed).to(kFloat) would give them; equal on every rank.
  struct TokenScores {
    at::Tensor logsumexp;     // [N]: log of the sum over the vocabulary of exp(logit)
    at::Tensor argmax;        // [N] int64: the first index of the largest logit
    at::Tensor target_logit;  // [R]: logit of targets[r] at row rows[r]
  };
  // log p(targets[r] | row rows[r]) = target_logit[r] - logsumexp[rows[r]].
  TokenScores ScoreTokens(const at::Tensor& normed, const at::Tensor& rows,
                          const at::Tensor& targets) const;
  // Full forward: logits [B, T, vocab] in the compute dtype.
  at::Tensor Forward(const at::Tensor& ids) const;
  // Runs every decoder layer over each batch of hidden states, layer-outer: layer i runs on
  // every batch before layer i + 1 (the study's perplexity order). A lazy model reads each layer
  // that is not in memory once, runs it on every batch and drops it again, so evaluation holds
  // one decoder layer plus the batches' hidden states; layers already in memory stay. Each
  // batch sees exactly the operations of ForwardHidden, so the results are the same bit for
  // bit. hiddens[b]: [B_b, T_b, hidden], replaced by the last layer's output (before the final
  // norm); ropes[b] belongs to hiddens[b]. Errors name the layer that could not be read. Not
  // thread-safe on a lazy model (the layer cache changes).
  Status RunLayers(std::vector<at::Tensor>& hiddens, const std::vector<RopeTables>& ropes) const;
  // Whether decoder layers are read on demand (LoadOptions::lazy_layers).
  bool lazy() const { return static_cast<bool>(lazy_get_); }
  // Hidden states after the final norm, [B, T, hidden] (callers that chunk the lm_head).
  at::Tensor ForwardHidden(const at::Tensor& ids) const;
  // The same over explicit positions and attention mask (RopeTables, model/qwen3_layer.h).
  at::Tensor ForwardHidden(const at::Tensor& ids, const RopeTables& rope) const;

  // Lazy models (LoadOptions::lazy_layers): whether layer i is in memory; read it (a no-op when
  // it is, an error naming the tensor when the checkpoint is bad); drop it.
  bool layer_loaded(int64_t i) const { return loaded_.at(i); }
  Status MaterializeLayer(int64_t i);
  void ReleaseLayer(int64_t i);
  // LoadOptions::prefetch_layers: starts reading layer i on the loader thread, so that a driver
  // visiting the layers in order (the quantizer) can overlap the read with its work on layer
  // i - 1; MaterializeLayer(i) then waits for it. A no-op without prefetch_layers, for a layer
  // in memory or out of range, or while another layer is being read.
  void PrefetchLayer(int64_t i);
  // Runs `setup` on every decoder layer in memory now and on every layer a lazy model reads
  // later (e.g. a quantizer's activation hooks, which must survive a layer being re-read).
  using LayerSetup = std::function<void(int64_t i, DecoderLayer& layer)>;
  void AddLayerSetup(LayerSetup setup);

  DecoderLayer& layer(int64_t i) { return layers_.at(i); }
  const DecoderLayer& layer(int64_t i) const { return layers_.at(i); }
  // A linear by full HF name ("model.layers.3.self_attn.q_proj"), or nullptr.
  Linear* FindLinear(const std::string& name);
  // All weights in HF naming, in the compute dtype (lm_head omitted when tied). Under tensor
  // parallelism these are this rank's shards; the Full* variants below gather whole tensors.
  // REQUIRES: every layer materialized.
  std::vector<std::pair<std::string, at::Tensor>> NamedTensors() const;
  // The weights outside the decoder layers (embed_tokens, norm, lm_head unless tied) and those
  // of layer i: NamedTensors() is GlobalTensors() around every LayerTensors(i).
  std::vector<std::pair<std::string, at::Tensor>> GlobalTensors() const;
  std::vector<std::pair<std::string, at::Tensor>> LayerTensors(int64_t i) const;
  // GlobalTensors() / LayerTensors(i) with every shard gathered into the whole tensor (the
  // layout of a TP=1 model). Collective: under TP every rank must call it.
  std::vector<std::pair<std::string, at::Tensor>> FullGlobalTensors() const;
  std::vector<std::pair<std::string, at::Tensor>> FullLayerTensors(int64_t i) const;
  // Tensor parallelism, for algorithms that need a whole layer: a world-of-one model holding
  // only layer i, whole (gathered from every rank's shard; collective), with this model's
  // embeddings and final norm and no lm_head; and the inverse, which writes layer i of `whole`
  // back (its norms, and this rank's shard of each linear's weight).
  StatusOr<std::unique_ptr<Qwen3Model>> GatherLayer(int64_t i) const;
  Status ScatterLayer(int64_t i, const Qwen3Model& whole);
  // Total number of parameters (tied embeddings counted once).
  int64_t NumParameters() const;

  // Source of named tensors for Build: the tensor or an error naming it.
  using TensorGetter = std::function<StatusOr<at::Tensor>(const std::string& name)>;

 private:
  Qwen3Model();
  // Reads layer i into the (mutable) layer cache of a lazy model and runs the layer setups
  // (finishing a prefetch of it when one is under way).
  Status LoadLayer(int64_t i) const;
  void DropLayer(int64_t i) const;
  // Reads decoder layer i of a lazy model from the checkpoint into `out`, copying to the device
  // through `uploader` when given; errors name the model folder and the tensor.
  Status ReadLayer(int64_t i, DeviceUploader* uploader, DecoderLayer& out) const;
  // Puts a read layer into the cache and runs the layer setups on it.
  Status AdoptLayer(int64_t i, DecoderLayer layer) const;
  // LoadOptions::prefetch_layers: starts reading layer i on a loader thread; FinishPrefetch
  // waits for it (and for its copies, on the calling thread's stream) and adopts it.
  struct Prefetch;
  void StartPrefetch(int64_t i) const;
  Status FinishPrefetch() const;
  // lm_head's logits [N, V / W] in the compute dtype; converts a stored-dtype lm_head
  // (lazy_globals) one vocabulary chunk at a time.
  at::Tensor HeadLogits(const at::Tensor& normed) const;
  static StatusOr<std::unique_ptr<Qwen3Model>> Build(
      const Qwen3Config& config, const LoadOptions& options, const TensorGetter& get,
      const std::function<void(const std::string&)>& release = nullptr);
  Qwen3Config config_;
  ComputeDType dtype_ = ComputeDType::kFloat32;
  c10::Device device_ = c10::Device(c10::kCPU);
  at::Tensor embed_tokens_;  // [vocab, hidden]
  at::Tensor norm_;          // [hidden]
  at::Tensor lm_head_;       // [vocab, hidden] (TP: this rank's rows, zero-padded to
                             // ceil(V/W)); same storage as embed_tokens_ when tied and whole
  std::shared_ptr<const Collective> tp_;
  // A lazy model's layer cache: which layers are in memory changes what the model costs, not
  // what it computes, so const evaluation (RunLayers) may fill and drop it.
  mutable std::vector<DecoderLayer> layers_;
  std::string source_;                // the folder Load read, for error messages
  mutable std::vector<bool> loaded_;  // per layer; all true unless lazy
  bool stored_linears_ = false;       // LoadOptions::stored_linear_weights
  std::vector<LayerSetup> layer_setups_;
  TensorGetter lazy_get_;     // lazy models: reads a tensor from the checkpoint
  std::function<void(const std::string&)> release_;  // lazy models: drops a tensor's pages
  bool prefetch_ = false;     // LoadOptions::prefetch_layers (lazy models only)
  mutable std::unique_ptr<DeviceUploader> uploader_;  // prefetch on CUDA
  // The layer being read on the loader thread, if any. Declared last: destroyed (its thread
  // joined) before anything that thread uses.
  mutable std::unique_ptr<Prefetch> prefetch_pending_;
};

}  // namespace bitsweep::model
