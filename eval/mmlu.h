// MMLU k-shot in the original Hendrycks format, as the study's evaluate_hf.py scores it
// (docs/study-protocol.md#3-evaluation):
//   prompt = "The following are multiple choice questions (with answers) about" + " " +
//            subject words joined by " " + ".\n\n"            (two spaces after "about")
//          + k dev examples, each "{q}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer: {X}\n\n"
//          + the test question, formatted the same way but ending in "\nAnswer:";
//   while the prompt has more than `max_tokens` tokens, k is decremented;
//   the logits at the last position are read at tokenizer("A").input_ids[-1], ... "D";
//   prediction = argmax (of their softmax), ties to the first letter.
// Reported: accuracy per subject, per subcategory and per category of the original
// categories.py, and overall as the mean over all questions ("weighted accuracy"), each with
// lm-eval's standard error of the mean.
//
// Data: <dir>/mmlu/{dev,test}/<subject>_{dev,test}.csv, the original headerless CSV layout
// (question, A, B, C, D, answer letter), with quoted fields that may span lines. Cells are
// used as pandas.read_csv(header=None) gives them to the script: an empty cell or one of
// pandas' default NA strings reads as "nan". (pandas would also re-format all-numeric
// columns, e.g. "1" as "1.0" in a float column; no column of the released data is affected,
// which was checked cell by cell against pandas 1.5.)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "eval/loglikelihood.h"
#include "eval/tasks.h"

namespace bitsweep::model {
class Qwen3Model;
class Tokenizer;
}  // namespace bitsweep::model

namespace bitsweep::eval {

struct MmluQuestion {
  std::string question;
  std::string choices[4];
  std::string answer;  // "A".."D"
};

// Rows of a headerless 6-column MMLU CSV file; errors name the file and line.
StatusOr<std::vector<MmluQuestion>> ReadMmluCsv(const std::string& path);

// The subjects under <data_dir>/mmlu/test, sorted (the script's order).
StatusOr<std::vector<std::string>> MmluSubjects(const std::string& data_dir);

// The prompt text of the script for `shots` dev examples and one test question.
std::string MmluPrompt(const std::string& subject, const std::vector<MmluQuestion>& dev,
                       int64_t shots, const MmluQuestion& test);

// The original categories.py: subject -> subcategory, subcategory -> category.
const std::string& MmluSubcategory(const std::string& subject);   // "" when unknown
const std::string& MmluCategory(const std::string& subcategory);  // "" when unknown

struct MmluOptions {
  int64_t ntrain = 5;                 // shots
  int64_t max_tokens = 2048;          // the script's prompt limit
  int64_t limit = 0;                  // first N test questions of each subject; 0 = all
  std::vector<std::string> subjects;  // empty = every subject
  LoglikelihoodOptions engine;
};

struct MmluGroup {
  MetricValue acc;
  int64_t n = 0;
};

struct MmluResult {
  MmluGroup overall;
  std::map<std::string, MmluGroup> subjects, subcategories, categories;
  int64_t n = 0;
  int64_t available = 0;  // test questions in the selected subjects
  bool limited = false;
  int64_t shots_reduced = 0;         // questions whose prompt needed fewer than ntrain shots
  std::vector<int64_t> predictions;  // per question, subjects in order
  LoglikelihoodRun engine;           // timings and token counts (results cleared)
};

StatusOr<MmluResult> EvaluateMmlu(const model::Qwen3Model& model, const model::Tokenizer& tokenizer,
                                  const std::string& data_dir, const MmluOptions& options);

}  // namespace bitsweep::eval
