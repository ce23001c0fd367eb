// The torch-free catalogs of quantization methods and evaluation tasks: the one place that says
// what each method and task is, read by the CLI, the coordinator and the workers alike.
//
// One row per method and one per task, as constant tables with static storage, each row written
// with named fields (common/catalog.cc). Everything that differs between methods and that the
// coordinator, the CLI or the docs need lives in the row: name, bit ranges, group size rules,
// options (name, type, default, range, help), calibration defaults and what the recipe says of
// the grid. The quant-side entry points (typed options, per-layer quantizer) are bound to the
// same names in quant/methods.cc; the task loaders in eval/run_task.cc. From the rows come the
// `bitsweep quantize` flags, the sweep's validation and skip reasons, the job spec's defaults and
// the README's option table (MethodOptionsMarkdown). Every function here is pure and thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep {

enum class OptionType { kBool, kInt, kDouble, kChoice };

// One method option, named as the `bitsweep quantize` flag without dashes (`--awq-n-grid` is
// `awq_n_grid`; a boolean that defaults to true is turned off with `--no-<name>`, so
// `--no-true-sequential` is `true_sequential: false`). See OptionFlag.
struct MethodOption {
  const char* name = "";
  OptionType type = OptionType::kBool;
  const char* default_value = "false";  // canonical text (see NormalizeOptionValue)
  double min = 0, max = 0;              // inclusive range for kInt / kDouble
  const char* choices = "";             // kChoice: '|'-separated allowed values
  const char* help = "";
  // A boolean option that may be true only when this other boolean option of the method is
  // ("static_groups" needs "act_order").
  const char* requires_option = "";
};

// Calibration defaults of a method (README "Calibration", docs/study-protocol.md).
struct CalibrationDefaults {
  const char* source = "";  // "c4"
  int64_t nsamples = 0, seqlen = 0, seed = 0;
  const char* procedure = "";  // "gptq-windows" or "awq-blocks"
};

struct MethodInfo {
  const char* name = "";  // "rtn", ..., "fp" for the unquantized baseline
  const char* description = "";
  bool baseline = false;  // the unquantized model (fp): no method runs
  // Weight bits: the accepted range and what `bitsweep quantize` uses without --wbits.
  int min_wbits = 0, max_wbits = 0, default_wbits = 0;  // fp: 16 (weights as stored)
  // Why a method has one width, for skip reasons ("binarizes weights"); "" for ranges.
  const char* wbits_note = "";
  // Activation bits (applied at evaluation); 0..0 for weight-only methods.
  bool takes_abits = false;
  int min_abits = 0, max_abits = 0, default_abits = 0;
  // Whether a group size applies; where not, why (for errors and skip reasons).
  bool group_size_applies = false;
  int default_group_size = -1;  // -1 = per channel
  const char* group_note = "";  // "quantizes weights per channel"
  // A boolean option that, when true, makes the method quantize per channel whatever the group
  // size says (so every group size names one artifact); "" for none.
  const char* per_channel_option = "";
  bool needs_calibration = false;
  // A boolean option that, when true, makes a calibrated method use no calibration data.
  const char* no_calibration_option = "";
  std::vector<const MethodOption*> options;
  CalibrationDefaults calibration;
  // What quantization_config.json records of the stored grid.
  const char* grid = "";
  bool symmetric = false;
  // Whether <out>/packed (the GPTQ checkpoint layout) can hold the result (at 2/3/4/8 bits).
  bool packable = false;
  // Mixed precision (common/mixed_precision.h): whether a per-layer override may give a linear
  // other weight bits (in the range above) or keep it in full precision (wbits 16); where one
  // is not offered, why (the error names it).
  bool override_bits = true, override_keep_fp = true;
  const char* override_note = "";
};

enum class TaskKind { kPerplexity, kMultipleChoice, kKShot };

struct TaskInfo {
  const char* name = "";  // "wikitext2", ...; "file" for a custom multiple-choice .jsonl task
  TaskKind kind = TaskKind::kMultipleChoice;
  std::vector<const char*> metrics;  // as lm-eval / the perplexity protocol reports them
  int default_num_fewshot = 0;       // 0 except mmlu (5)
  const char* description = "";
  // The files read under the data directory (README "Accuracy tasks" / "Perplexity protocol").
  const char* data_files = "";
};

// Every method row, fp first, in a stable order.
const std::vector<MethodInfo>& Methods();
// Every named task row (not the "file" row), in a stable order.
const std::vector<TaskInfo>& Tasks();

// The row whose name equals `name` ignoring ASCII case ("GPTQ" is gptq; callers keep the row's
// name, not the spelling). INVALID_ARGUMENT naming the known names when `name` is not a row,
// with "did you mean" the closest name when it is a typo away (at most two edits).
StatusOr<const MethodInfo*> LookupMethod(std::string_view name);
// The rows of the quantization methods (every row but the fp baseline).
std::vector<const MethodInfo*> QuantizationMethods();
// A catalog task name, or a path to a .jsonl file of {"context", "choices", "gold"} lines (a
// custom multiple-choice task, as `bitsweep eval` takes it), which returns the "file" row. Names
// ignore ASCII case and errors suggest the closest name, as LookupMethod.
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

// Every option name of every method, once each, in table order (the CLI registers one flag per
// name).
std::vector<const MethodOption*> AllOptions();
// The `bitsweep quantize` flag of an option: "--awq-n-grid", "--act-order",
// "--no-true-sequential" (a boolean that defaults to true).
std::string OptionFlag(const MethodOption& option);
// The methods that take an option, comma-separated ("gptq, ...").
std::string OptionOwners(std::string_view option);

// Typed reads of a normalised option map (every option of the method present, canonical text).
// REQUIRES: the option is present (NormalizeQuantConfig fills every default).
bool OptionBool(const std::map<std::string, std::string>& options, const char* name);
int64_t OptionInt(const std::map<std::string, std::string>& options, const char* name);
double OptionDouble(const std::map<std::string, std::string>& options, const char* name);
const std::string& OptionText(const std::map<std::string, std::string>& options, const char* name);

// "2..8" or "1" for messages.
std::string BitsRange(int min_bits, int max_bits);

// The README's generated sections: the option table of every method and the task table, as
// Markdown (`bitsweep catalog --markdown` prints both between their markers).
std::string MethodOptionsMarkdown();
std::string TasksMarkdown();
// Both, each between its `<!-- BEGIN generated: NAME ... -->` and `<!-- END generated: NAME -->`
// markers, exactly as README.md must contain them (tests/common/readme_catalog_test.cc).
std::string ReadmeGeneratedSections();

}  // namespace bitsweep
