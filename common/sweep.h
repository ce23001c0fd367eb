// A sweep: the grid of an experiment (models x quant configs x tasks), as written in a YAML file,
// and its expansion into de-duplicated JobSpecs.
//
// ParseSweepYaml validates everything that does not depend on a model (names, types, option
// names and values, unknown keys are errors naming the field and the file:line:column).
// ExpandSweep then lists every job and every combination it leaves out with the reason
// (a width outside the method's range, abits for a weight-only method, a group size that does
// not divide a model's in_features as read from its config.json, per common/qwen3_arch.h).
// Plain values and pure functions except that ExpandSweep reads config.json files;
// thread-compatible.
//
// Bounds (a sweep is untrusted input to a long-lived coordinator): the YAML text is at most
// kMaxSweepYamlBytes, every list (models, methods, tasks, a method's names, wbits, abits, group)
// at most kMaxSweepListLength entries, and ExpandSweep refuses a grid larger than
// ExpandOptions::max_jobs before building any job (SweepGridSize: counted, not expanded).
//
// File format (examples/sweeps/*.yaml):
//   name: study                       # required
//   run_tag: torch-2.6                # default none: run every job again, under this tag
//   priority: 0                       # default 0; higher runs first
//   max_attempts: 3                   # default 3
//   baseline: true                    # default true: the fp model on every task
//   resources: {devices: 1, memory_gb: 0, tp: 1}        # default for every model
//   models: [/models/Qwen3-8B, {path: /models/Qwen3-32B, name: Qwen3-32B-base, devices: 2,
//            memory_gb: 80, tp: 2}]
//   methods:
//     - {method: gptq, wbits: [2, 3, 4], group: [128], options: {act_order: true},
//        calibration: {nsamples: 64}}   # method may be a list (its options must apply to
//                                         # every method listed); wbits/abits/group a scalar
//   tasks: [wikitext2, {task: mmlu, num_fewshot: 5, limit: 100}, data/heldout.jsonl]
//   calibration: {source: c4, nsamples: .., seqlen: .., seed: .., dtype: fp32}  # else per method
//   eval: {seqlen: 2048, batch_size: 1, dtype: fp32, limit: 0}
//   early_abort: {ppl_ratio: 3.0, on: wikitext2, hold_seconds: 300}   # common/early_abort.h
//   methods: [{method: rtn, wbits: 3, overrides: [{layers: "0-3", wbits: 4},
//                                                  {linear: down_proj, wbits: 4, group: 64}]}]
//   sensitivity: {method: rtn, wbits: 2, unit: layer}   # or unit: linear_type; one job per unit
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/early_abort.h"
#include "common/job_spec.h"
#include "common/status.h"

namespace bitsweep {

inline constexpr size_t kMaxSweepYamlBytes = 1 << 20;  // 1 MiB
inline constexpr size_t kMaxSweepListLength = 1000;
inline constexpr size_t kMaxModelNameBytes = 200;  // a model's `name:`
inline constexpr int64_t kDefaultMaxJobsPerSweep = 100000;

struct SweepModel {
  std::string path;
  // The name tables show for the model instead of its folder's (`name:`); "" = none given.
  // Unique within the sweep. Not part of any job: a name changes no key and no result.
  std::string name;
  Resources resources;
};

// Fields left unset fall back to the sweep's calibration, then to the method's defaults.
struct CalibrationOverride {
  std::optional<std::string> source, dtype;
  std::optional<int64_t> nsamples, seqlen, seed;
};

struct SweepMethod {
  std::string method;
  std::vector<int> wbits;  // empty: the method's only width where it has one; else required
  std::vector<int> abits;  // empty: 0 (weight-only) / the method's default_abits
  std::vector<int> group;  // empty: the method's default (128, or -1 where none applies)
  std::map<std::string, std::string> options;  // canonical values
  CalibrationOverride calibration;
  // Mixed precision (common/mixed_precision.h), the same for every wbits x abits x group.
  std::vector<QuantOverride> overrides;
};

// `sensitivity:` one job per unit (every decoder layer, or every linear type) with only that
// unit quantized by `method` (one method, one wbits, one group) and everything else in FP.
inline constexpr int64_t kMaxSensitivityLayers = 128;  // Qwen3 has at most 94
struct SweepSensitivity {
  enum class Unit { kLayer, kLinearType };
  SweepMethod method;
  Unit unit = Unit::kLayer;
};

struct SweepTask {
  std::string task;
  std::optional<int64_t> limit;
  std::optional<int> num_fewshot;
};

struct SweepSpec {
  std::string name;
  // `run_tag:` every job's JobSpec::run_tag: the sweep shares results and artifacts only with
  // sweeps of the same tag ("" = none, the untagged ones).
  std::string run_tag;
  int priority = 0;
  int max_attempts = 3;
  bool baseline = true;
  std::vector<SweepModel> models;
  std::vector<SweepMethod> methods;
  std::vector<SweepTask> tasks;
  CalibrationOverride calibration;
  EvalConfig eval;  // task unused; limit is every task's default
  // `early_abort:`; `on` is a perplexity task of `tasks`.
  std::optional<EarlyAbortRule> early_abort;
  std::optional<SweepSensitivity> sensitivity;
};

// The quantization config of sensitivity unit `unit` (a layer index, or an index into
// LinearTypes()) of `s` before normalisation: s.method's recipe with every other unit in FP.
QuantConfig SensitivityConfig(const SweepSensitivity& s, int64_t unit);

struct ParseOptions {
  // Relative paths of the sweep (model folders, .jsonl task files, calibration files; not the
  // named tasks and sources c4, wikitext2, ...) are resolved against this absolute folder, the
  // sweep file's, and lexically normalised; "" keeps them as written.
  std::string base_dir;
};

// The names the sweep gives its model folders (`name:`), by folder path as its jobs name it;
// models without a name are not listed.
std::map<std::string, std::string> ModelNames(const SweepSpec& spec);

// `source_name` prefixes error positions ("study.yaml:12:5: methods[1].wbits[0]: ...").
StatusOr<SweepSpec> ParseSweepYaml(std::string_view yaml, std::string_view source_name,
                                   const ParseOptions& options = {});
// Reads and parses a sweep file; relative paths resolve against the file's folder.
StatusOr<SweepSpec> ParseSweepFile(const std::string& path);

struct SkippedCombination {
  std::string description;  // "gptq w1 g128" or "/models/Qwen3-8B: rtn w4 g96"
  std::string reason;
};

struct ExpandedSweep {
  std::vector<JobSpec> jobs;  // normalised; unique JobKey; baseline first per model
  std::vector<SkippedCombination> skipped;
};

struct ExpandOptions {
  // Relative model paths are looked up under this folder for config.json ("" = the working
  // directory). Job specs keep the paths as written.
  std::string model_root;
  // Largest grid (SweepGridSize) expanded; a larger one is INVALID_ARGUMENT naming its size and
  // this limit, found before any job is built. 0 = no limit.
  int64_t max_jobs = kDefaultMaxJobsPerSweep;
};

// The jobs the sweep's grid asks for before any combination is skipped or de-duplicated:
// models x (baseline + every method's wbits x abits x group) x tasks, an upper bound of
// ExpandSweep's job count. Computed from the list lengths without expanding; saturates at
// INT64_MAX.
int64_t SweepGridSize(const SweepSpec& spec);

// Quantization configurations per model before skipping: the baseline and every method's
// wbits x abits x group (saturating).
int64_t GridConfigurations(const SweepSpec& spec);

// INVALID_ARGUMENT for what no skip can fix (an empty grid, an unreadable config.json, a grid
// over options.max_jobs).
StatusOr<ExpandedSweep> ExpandSweep(const SweepSpec& spec, const ExpandOptions& options = {});

}  // namespace bitsweep
