// One evaluation task by name, as `bitsweep eval` and the workers run it: the task's kind comes
// from its row of the task catalog (common/catalog.h): perplexity (wikitext2, c4), the zero-shot
// multiple-choice tasks (piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, or a
// custom .jsonl file) and MMLU; unknown names are an InvalidArgument listing the known tasks.
// Returns the metric rows the service stores, the full JSON object `bitsweep eval --json` prints
// and a text summary.
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

struct TaskSettings {
  std::string task;
  std::string data_dir;        // needed by every task but custom .jsonl ones
  int64_t seqlen = 2048;       // perplexity window
  int64_t max_windows = 0;     // perplexity: first K windows (0 = all)
  int64_t ppl_batch_size = 1;  // perplexity windows per forward
  // A layer-streamed model: bytes of hidden states (perplexity windows, or log-likelihood
  // forwards) that go through the layers together (PerplexityOptions and
  // LoglikelihoodOptions::stream_group_bytes).
  int64_t stream_group_bytes = 0;
  int64_t limit = 0;           // accuracy tasks: first N documents (MMLU: per subject)
  int64_t num_fewshot = 5;     // MMLU shots
  int64_t batch_size = 16;     // accuracy tasks: rows per forward
  bool prefix_reuse = true;
  // (done, total) in windows (perplexity) or requests (accuracy tasks).
  std::function<void(int64_t, int64_t)> progress;
};

struct TaskMetric {
  std::string name;  // "ppl", "acc", "acc_norm", "acc/category/STEM", "acc/subject/anatomy"
  double value = 0;
  double stderr_ = 0;
  int64_t n = 0;
};

struct TaskOutcome {
  std::string task;
  std::vector<TaskMetric> metrics;
  std::string json;     // the object `bitsweep eval --json` prints (without model fields)
  std::string summary;  // human-readable lines
};

StatusOr<TaskOutcome> RunEvalTask(const model::Qwen3Model& model, const model::Tokenizer& tokenizer,
                                  const TaskSettings& settings);

}  // namespace bitsweep::eval
