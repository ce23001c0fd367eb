// JobSpec: one unit of work of a sweep (quantize a model once, evaluate it on one task), and
// the canonical keys that de-duplicate work across jobs and sweeps.
//
// ArtifactKey() names the quantized model (model, quant config, calibration): every job that
// needs the same artifact has the same key, so a worker can reuse it. JobKey() adds the eval
// config and names the result. Keys are canonical: NormalizeJobSpec fills every default (all of
// the method's options included) and fixes the field order, so two specs that mean the same
// have the same key. Plain value types; no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/catalog.h"
#include "common/status.h"

namespace bitsweep {

// One entry of a mixed-precision recipe (common/mixed_precision.h): the linears it selects get
// the fields it sets; later entries win. Normalisation rewrites the list in a canonical form.
struct QuantOverride {
  std::string layers;  // "" = every layer; else ranges such as "0-3,7"
  std::string linear;  // "" = every linear type; else q_proj, k_proj, ..., down_proj
  int wbits = 0;       // 0 = unchanged; 16 = keep in full precision
  int group_size = 0;  // 0 = unchanged; -1 = per channel
};

struct QuantConfig {
  std::string method = "fp";  // a catalog row name
  int wbits = 16;             // normalised to 16 for fp
  int abits = 0;              // 0 = activations not quantized (weight-only methods)
  int group_size = -1;        // -1 = per channel; -1 where the method has no groups
  // Option name -> canonical value; after normalisation it holds every option of the method.
  std::map<std::string, std::string> options;
  // Per-layer / per-linear-type precision; empty = uniform (and the key of a uniform recipe).
  std::vector<QuantOverride> overrides;
};

struct CalibrationConfig {
  std::string source = "c4";   // "c4", "wikitext2" or a file path (lexically normalised)
  int64_t nsamples = 0;        // 0 = the method's default (filled in by normalisation)
  int64_t seqlen = 0;          // 0 = the method's default
  int64_t seed = -1;           // -1 = the method's default
  std::string dtype = "fp32";  // compute dtype of the calibration forward: fp32 | bf16
};

struct EvalConfig {
  std::string task;       // a catalog task name or a text file path (perplexity)
  int64_t limit = 0;      // 0 = all; perplexity: windows; other tasks: examples
  int num_fewshot = -1;   // -1 = the task's default (5 for mmlu, else 0)
  int64_t seqlen = 2048;  // perplexity window; normalised to 0 for other tasks
  int64_t batch_size = 1;
  std::string dtype = "fp32";  // fp32 | bf16
};

struct Resources {
  int devices = 1;       // accelerators (or CPU sockets) the job needs
  double memory_gb = 0;  // 0 = unspecified
  int tp = 1;            // tensor-parallel degree, <= devices
};

struct JobSpec {
  std::string model;  // model folder path as the workers see it (lexically normalised)
  // A sweep's `run_tag:` (IsValidRunTag), "" = none. It enters both keys, so a tagged job shares
  // no result and no artifact with an untagged one or another tag's: it runs the same recipe
  // again (under a new code version, say). Absent from the keys and the JSON when empty, so
  // untagged keys are the ones they always were.
  std::string run_tag;
  QuantConfig quant;
  std::optional<CalibrationConfig> calibration;  // absent where NeedsCalibration is false
  EvalConfig eval;
  int priority = 0;  // higher runs first
  int max_attempts = 3;
  Resources resources;

  // REQUIRES: the spec is normalised (NormalizeJobSpec, JobSpecFromJson and ExpandSweep return
  // normalised specs). Neither priority, attempts nor resources enter a key.
  std::string ArtifactKey() const;
  std::string JobKey() const;
};

// 1 to kMaxRunTagBytes characters of [A-Za-z0-9._-]: a tag shows in labels ("run=v2") as is.
inline constexpr size_t kMaxRunTagBytes = 64;
bool IsValidRunTag(std::string_view tag);
// Why `tag` is not valid ("" when it is), for errors that name the field.
std::string RunTagProblem(std::string_view tag);

// Whether `q` (normalised or not) uses calibration data: the catalog row's needs_calibration,
// unless its no_calibration_option is true.
bool NeedsCalibration(const QuantConfig& q);

// How errors name the fields of a QuantConfig: as in a job spec ("quant.wbits",
// "quant.options.awq_n_grid") or as the `bitsweep quantize` flags ("--wbits", "--awq-n-grid").
enum class FieldNaming { kSpec, kFlags };
std::string QuantFieldName(std::string_view field, FieldNaming naming);

// Validates against the catalog and fills defaults. Errors are INVALID_ARGUMENT naming the field
// (quant.wbits, quant.options.awq_n_grid, calibration.nsamples, eval.task, ...).
StatusOr<QuantConfig> NormalizeQuantConfig(const QuantConfig& q,
                                           FieldNaming naming = FieldNaming::kSpec);
// The method's defaults fill fields left at 0 / -1; `calibration` is dropped when the method
// uses none and created with the method's defaults when it does and is absent.
StatusOr<JobSpec> NormalizeJobSpec(const JobSpec& spec);
// The eval part of NormalizeJobSpec, errors naming eval.* fields.
StatusOr<EvalConfig> NormalizeEvalConfig(const EvalConfig& eval);
// REQUIRES: `eval` is normalised. JobKey() == ArtifactKey() + "|" + EvalKey(eval).
std::string EvalKey(const EvalConfig& eval);

// JSON object with every field; FromJson rejects unknown fields and returns a normalised spec.
std::string JobSpecToJson(const JobSpec& spec);
StatusOr<JobSpec> JobSpecFromJson(std::string_view json);

// Short human label such as "gptq w4 g128 act_order=true" (non-default options only), with the
// canonical overrides of a mixed recipe after it ("rtn w3 L0-3:w4 down_proj:w4").
std::string DescribeQuant(const QuantConfig& q);
// Lexically normal path without a trailing slash ("./models//demo/" -> "models/demo").
std::string NormalizePath(std::string_view path);

// Lower-case hex SHA-256 of `data` (for fixed-length keys in indexes and artifact folder names).
std::string Sha256Hex(std::string_view data);

}  // namespace bitsweep
