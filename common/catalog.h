// The torch-free catalogs of quantization methods and evaluation tasks (STYLE.md P5).
//
// One row per method and one per task, as constant tables with static storage: the coordinator
// validates sweeps against them without linking libtorch, and quant/ and eval/ bind their entry
// points to the same names. Every function here is pure and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep {

enum class QuantMethod { kFp, kRtn, kGptq, kAwq, kSmoothQuant, kBillm };

enum class OptionType { kBool, kInt, kDouble, kChoice };

// One method option, named as the `bitsweep quantize` flag without dashes (`--awq-n-grid` is
// `awq_n_grid`; `--no-true-sequential` is `true_sequential: false`).
struct MethodOption {
  const char* name;
  OptionType type;
  const char* default_value;  // canonical text (see NormalizeOptionValue)
  double min = 0, max = 0;    // inclusive range for kInt / kDouble
  const char* choices = "";   // kChoice: '|'-separated allowed values
  const char* help = "";
};

// Calibration defaults of a method (README "Calibration", METHODS.md §1.3).
struct CalibrationDefaults {
  const char* source;  // "c4"
  int64_t nsamples, seqlen, seed;
  const char* procedure;  // "gptq-windows" or "awq-blocks"
};

struct MethodInfo {
  QuantMethod method;
  const char* name;          // "rtn", ..., "fp" for the unquantized baseline
  int min_wbits, max_wbits;  // fp: 16..16 (weights as stored)
  int min_abits, max_abits;  // 0..0 for weight-only methods
  bool needs_calibration;    // smoothquant with released_code=true needs none (NeedsCalibration)
  bool takes_abits;
  bool group_size_applies;  // false: per channel (smoothquant) or own blocks (billm)
  int default_group_size;   // -1 = per channel
  std::vector<const MethodOption*> options;
  CalibrationDefaults calibration;
  const char* description;
};

enum class TaskKind { kPerplexity, kMultipleChoice, kKShot };

struct TaskInfo {
  const char* name;  // "wikitext2", ...; "file" for a custom multiple-choice .jsonl task
  TaskKind kind;
  std::vector<const char*> metrics;  // as lm-eval / the perplexity protocol reports them
  int default_num_fewshot;           // 0 except mmlu (5)
  const char* description;
};

// Every method row, fp first, in a stable order.
const std::vector<MethodInfo>& Methods();
// Every named task row (not the "file" row), in a stable order.
const std::vector<TaskInfo>& Tasks();

// INVALID_ARGUMENT naming the known names when `name` is not a row.
StatusOr<const MethodInfo*> LookupMethod(std::string_view name);
const MethodInfo& MethodRow(QuantMethod method);
// A catalog task name, or a path to a .jsonl file of {"context", "choices", "gold"} lines (a
// custom multiple-choice task, as `bitsweep eval` takes it), which returns the "file" row.
StatusOr<const TaskInfo*> LookupTask(std::string_view name);
bool IsTaskPath(std::string_view name);
const char* TaskKindName(TaskKind kind);

// The option row `name` of `method`; INVALID_ARGUMENT when the method has no such option (the
// message says which method owns it, or that no method does).
StatusOr<const MethodOption*> LookupOption(const MethodInfo& method, std::string_view name);
// Parses `value` against `option` and returns its canonical text: bools "true"/"false" (also
// accepts yes/no/on/off/1/0), integers in decimal, doubles in the shortest text that
// round-trips, choices as written. Errors name the option and the range.
StatusOr<std::string> NormalizeOptionValue(const MethodOption& option, std::string_view value);

// "2..8" or "1" for messages.
std::string BitsRange(int min_bits, int max_bits);

}  // namespace bitsweep
