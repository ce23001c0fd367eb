// Perplexity evaluation as the study's code does it (docs/study-protocol.md#3-evaluation,
// GPTQ-style): the token stream is cut into non-overlapping windows of `seqlen` tokens (the tail
// that does not fill a window is dropped); each window is scored with no attention mask, predicting
// tokens 1..seqlen-1 from their prefixes; window i contributes nll_i = mean_loss_i * seqlen and
//   ppl = exp(sum_i nll_i / (windows * seqlen)),
// i.e. seqlen-1 predictions per window normalised as if there were seqlen.
// The reported `nll` is that exponent (log ppl); `predictions` counts the real predictions.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {
class Qwen3Model;
class Tokenizer;
}  // namespace bitsweep::model

namespace bitsweep::eval {

struct PerplexityOptions {
  int64_t seqlen = 2048;
  int64_t max_windows = 0;  // 0 = every full window of the stream
  int64_t batch_size = 1;   // windows per forward (all windows have the same length)
  // A lazy (layer-streamed) model runs groups of windows through the model one decoder layer
  // at a time (Qwen3Model::RunLayers, GPTQ's llama_eval order); a group's hidden states take at
  // most this many bytes (0: one batch per group; at least one batch). Results do not depend
  // on it. Resident models run batch by batch.
  int64_t stream_group_bytes = 0;
  // Called after each batch with (windows done, windows total).
  std::function<void(int64_t, int64_t)> progress;
};

struct PerplexityResult {
  double ppl = 0;
  double nll = 0;            // log(ppl)
  int64_t windows = 0;
  int64_t tokens = 0;        // windows * seqlen
  int64_t predictions = 0;   // windows * (seqlen - 1)
  int64_t stream_tokens = 0; // tokens in the whole evaluation stream
  double seconds = 0;
};

// Scores `stream` with `model`. InvalidArgument when the stream is shorter than one window.
StatusOr<PerplexityResult> EvaluatePerplexity(const model::Qwen3Model& model,
                                              const std::vector<int32_t>& stream,
                                              const PerplexityOptions& options);

// WikiText-2 test stream: the rows of `<data_dir>/wikitext2/wiki.test.raw` as Hugging Face's
// wikitext-2-raw-v1 test split (each line with its "\n"; whitespace-only lines become ""),
// joined with "\n\n" and tokenised once.
StatusOr<std::vector<int32_t>> WikiText2TestStream(const model::Tokenizer& tokenizer,
                                                   const std::string& data_dir);

// How the C4 stream was built, for the report.
struct C4Stream {
  std::vector<int32_t> tokens;
  std::string file;
  std::string protocol;  // "study-segments" or "gptq-random-segments"
  int64_t documents = 0;
};

// C4 validation stream of 256 segments of `seqlen` tokens from a JSONL file of documents
// ({"text": ...} per line) under `<data_dir>/c4/`:
//  * the full shard c4-validation.00000-of-00008.json (45576 documents): the study's fixed
//    (document, offset) pairs (docs/study-protocol.md#c4-segments),
//    segment = tokens[off, off + seqlen);
//  * any other file: the GPTQ loader's procedure on that file, with CPython's generator
//    seeded 0: pick a random document until it has more than seqlen tokens, then a random
//    offset in it (the procedure that generated the study's pairs on the full shard).
StatusOr<C4Stream> C4ValidationStream(const model::Tokenizer& tokenizer,
                                      const std::string& data_dir, int64_t seqlen);

// Reads a JSONL file of documents and returns each line's "text". Errors name file and line.
StatusOr<std::vector<std::string>> ReadJsonlTexts(const std::string& path);

}  // namespace bitsweep::eval
