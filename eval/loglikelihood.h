// The batched log-likelihood engine under every accuracy task (lm-evaluation-harness's
// `loglikelihood` request type, as HFLM._loglikelihood_tokens computes it):
//   whole = context + continuation; input = whole[-(max_length + 1):][:-1];
//   logprob = sum over the continuation tokens of log_softmax(logits)[token] at the position
//   that predicts it; greedy = every continuation token is the argmax there.
//
// Two ways to lay requests out, giving the same numbers to float tolerance:
//  * one request per row: rows sorted by length (longest first) and right padded into batches;
//  * prefix reuse (default): requests sorted by token sequence are packed into rows as a prefix
//    tree in preorder (the tokens they share are stored, and computed, once: the context of a
//    question for all its choices, MMLU's few-shot header for every question of a subject). A
//    token sees exactly its ancestors, with its depth as the RoPE position, so every request's
//    logits are those of its own sequence run alone.
// Logits are computed only at the positions that predict continuation tokens (the LM head is a
// large share of a small model's FLOPs), in chunks, log-softmax in fp32 as logit - logsumexp
// (Qwen3Model::ScoreTokens: vocabulary-parallel under tensor parallelism).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {
class Qwen3Model;
}

namespace bitsweep::eval {

struct LoglikelihoodRequest {
  std::vector<int32_t> context;       // non-empty (lm-eval puts the EOT token in an empty one)
  std::vector<int32_t> continuation;  // non-empty
};

struct LoglikelihoodResult {
  double logprob = 0;
  bool greedy = false;
};

struct LoglikelihoodOptions {
  // Context limit: longer inputs keep their last max_length tokens (lm-eval's left truncation).
  // 0 = the model's max_position_embeddings (2048 when the config has none).
  int64_t max_length = 0;
  int64_t batch_size = 16;           // rows per forward
  int64_t max_batch_tokens = 16384;  // rows x padded length per forward (bounds activations)
  bool prefix_reuse = true;
  int64_t max_row_tokens = 4096;  // tokens packed into one prefix-tree row (at least the
                                  // longest input)
  // A lazy (layer-streamed) model runs groups of forwards through the model one decoder layer
  // at a time (Qwen3Model::RunLayers); a group's hidden states take at most this many bytes
  // (at least one forward). Results do not depend on it. Resident models: one forward at a time.
  int64_t stream_group_bytes = 0;
  // Called after each forward with (requests done, requests total).
  std::function<void(int64_t, int64_t)> progress;
};

struct LoglikelihoodRun {
  std::vector<LoglikelihoodResult> results;  // in request order
  int64_t forwards = 0;                      // forward passes
  int64_t rows = 0;
  int64_t tokens = 0;         // real tokens run through the model (padding excluded)
  int64_t padded_tokens = 0;  // rows x padded length, summed over forwards
  double seconds = 0;
};

// Scores every request. InvalidArgument names the first request with an empty context or
// continuation or a token id outside the vocabulary.
StatusOr<LoglikelihoodRun> ScoreLoglikelihood(const model::Qwen3Model& model,
                                              const std::vector<LoglikelihoodRequest>& requests,
                                              const LoglikelihoodOptions& options);

}  // namespace bitsweep::eval
