// Zero-shot multiple-choice tasks, defined as lm-evaluation-harness (>= 0.4) defines them
// (docs/study-protocol.md#3-evaluation). Each document becomes one log-likelihood request per
// choice; the target delimiter is " ":
//   piqa          "Question: {goal}\nAnswer:"  +  " {sol_i}"                      acc, acc_norm
//   arc_easy,     "Question: {question.stem}\nAnswer:"  +  " {choice_i.text}"   acc, acc_norm
//   arc_challenge
//   hellaswag     preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())
//                 +  " " + preprocess(ending_i)                                  acc, acc_norm
//   winogrande    sentence[:i] + option_k  +  " " + sentence[i+1:].strip()      acc
//                 (i = the index of "_": the option goes in the context, the shared suffix is
//                 scored)
//   boolq         "{passage}\nQuestion: {question}?\nAnswer:"  +  " no" | " yes"   acc
// acc = [argmax_i logprob_i == gold]; acc_norm = [argmax_i logprob_i / len(choice_i) == gold]
// with len in Unicode code points of the choice string (the delimiter excluded), as Python's
// len; ties go to the first choice (numpy argmax). Both come with lm-eval's standard error of
// the mean, sqrt(sample variance / n).
//
// Data files under a data directory (the layout of ../shared/data):
//   piqa/valid.jsonl + piqa/valid-labels.lst, arc/ARC-{Easy,Challenge}-Test.jsonl,
//   hellaswag/hellaswag_val.jsonl (the original layout) or else hellaswag/hellaswag_val_full.txt
//   (llama.cpp's preprocessed 6-line layout, used as is), winogrande/dev.jsonl,
//   boolq/val.jsonl (label a JSON boolean or the string "true"/"false").
// A custom task is a JSONL file of {"context": str, "choices": [str], "gold": int} lines,
// scored as context + " " + choice with acc and acc_norm.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "eval/loglikelihood.h"

namespace bitsweep::model {
class Qwen3Model;
class Tokenizer;
}  // namespace bitsweep::model

namespace bitsweep::eval {

// One document: one (context, continuation) request per choice.
struct ChoiceDoc {
  std::vector<std::string> contexts;       // per choice
  std::vector<std::string> continuations;  // per choice, target delimiter included
  std::vector<std::string> choices;        // lm-eval's doc_to_choice (acc_norm lengths)
  int64_t gold = 0;
};

struct TaskData {
  std::string name;
  std::string source;  // the file(s) read
  std::string note;    // how the data differs from the harness's, when it does
  bool has_acc_norm = false;
  std::vector<ChoiceDoc> docs;
};

// A multiple-choice task of the catalog (common/catalog.h) by name, or a custom JSONL task when
// `name` ends in ".jsonl" (its name is the file's stem). Missing or malformed files: an error
// naming the file and line.
StatusOr<TaskData> LoadChoiceTask(const std::string& name, const std::string& data_dir);
StatusOr<TaskData> LoadJsonlTask(const std::string& path);

// lm-eval's HFLM._encode_pair: trailing spaces of the context move to the continuation, the
// continuation's tokens are those of tok(context + continuation) after tok(context)'s length.
std::pair<std::vector<int32_t>, std::vector<int32_t>> EncodePair(const model::Tokenizer& tokenizer,
                                                                 const std::string& context,
                                                                 const std::string& continuation);

// Text helpers with Python's semantics (exposed for tests).
std::string PyStrip(const std::string& s);       // str.strip(): Unicode whitespace
std::string PyCapitalize(const std::string& s);  // str.capitalize(): title-case first, lower rest
int64_t CodepointLength(const std::string& s);   // len(str)
std::string HellaswagPreprocess(const std::string& text);  // lm-eval hellaswag utils.preprocess

struct MetricValue {
  double value = 0;
  double stderr_ = 0;
};

struct ChoiceTaskResult {
  std::string task;
  int64_t n = 0;          // documents scored
  int64_t available = 0;  // documents in the task
  bool limited = false;   // --limit cut the task short
  MetricValue acc;
  bool has_acc_norm = false;
  MetricValue acc_norm;
  std::vector<int64_t> predictions;       // argmax per document (acc)
  std::vector<int64_t> predictions_norm;  // argmax per document (acc_norm)
  LoglikelihoodRun engine;                // timings and token counts (results cleared)
};

struct ChoiceTaskOptions {
  int64_t limit = 0;  // first N documents; 0 = all
  LoglikelihoodOptions engine;
};

StatusOr<ChoiceTaskResult> EvaluateChoiceTask(const model::Qwen3Model& model,
                                              const model::Tokenizer& tokenizer,
                                              const TaskData& task,
                                              const ChoiceTaskOptions& options);

// mean and lm-eval's mean_stderr (sample standard deviation / sqrt(n); 0 when n < 2).
MetricValue MeanWithStderr(const std::vector<double>& xs);

}  // namespace bitsweep::eval
