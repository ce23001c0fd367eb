// Trains a small Qwen3-architecture model from scratch with libtorch autograd and AdamW:
// next-token cross entropy on random windows of a token stream, linear warmup then cosine
// decay, global gradient-norm clipping. Deterministic for a seed on a fixed thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/tiny_model.h"

namespace bitsweep::tools {

struct TrainOptions {
  model::TinyModelOptions shape;  // architecture (seed, dtype and vocab_size are used too)
  int64_t seqlen = 256;           // tokens per training window
  int64_t batch = 16;             // windows per step
  int64_t steps = 1000;
  double lr = 3e-3;           // peak learning rate
  int64_t warmup = 50;        // linear warmup steps
  double weight_decay = 0.1;  // on matrices only
  double clip = 1.0;          // global gradient-norm clip
  int64_t eval_every = 100;   // held-out evaluation period in steps (0 = only at the end)
  // Held-out windows per evaluation, taken from the non-overlapping grid of seqlen + 1 tokens
  // that eval::EvaluatePerplexity(seqlen = this seqlen + 1) scores, spread evenly over it; when
  // the held-out stream has at most this many windows they are all of them, so the saved
  // folder's perplexity equals exp(heldout_loss) (the tests check this).
  int64_t eval_windows = 16;
  std::string stored_dtype = "bf16";
};

struct TrainReport {
  int64_t step = 0;
  double train_loss = 0;     // mean training-batch loss over the steps since the last report
  double heldout_loss = -1;  // mean next-token loss on held-out windows (-1 if not evaluated)
  double seconds = 0;
};

struct TrainResult {
  std::vector<TrainReport> history;
  int64_t parameters = 0;
  double final_heldout_loss = 0;
};

// Trains on `train` and evaluates on `heldout` (token ids < vocab_size), then writes the model
// folder `out_dir` (config.json + model.safetensors; the caller adds tokenizer.json).
StatusOr<TrainResult> TrainQwen3(const std::vector<int32_t>& train,
                                 const std::vector<int32_t>& heldout, int64_t vocab_size,
                                 const TrainOptions& options, const std::string& out_dir,
                                 const std::function<void(const TrainReport&)>& progress = {});

// The baseline a trained model must beat: the mean next-token loss (nats) on `heldout` of a
// unigram model estimated on `train` with add-one smoothing over `vocab_size` ids.
double UnigramLoss(const std::vector<int32_t>& train, const std::vector<int32_t>& heldout,
                   int64_t vocab_size);

}  // namespace bitsweep::tools
