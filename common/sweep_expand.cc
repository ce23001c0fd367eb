// Expanding a parsed sweep into its jobs (common/sweep.h: ExpandSweep): every combination of
// model, quantization configuration and task, minus those that make no sense (each skipped once
// with the reason), de-duplicated by job key, in task-major order.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "common/mixed_precision.h"
#include "common/qwen3_arch.h"
#include "common/sweep.h"

namespace bitsweep {
namespace {

namespace fs = std::filesystem;

// The in_features of a model's quantized linears (common/qwen3_arch.h), each with the
// config.json key it comes from; one entry per distinct (key, value), in table order. Both a
// dense and an MoE layer's linears are listed where the config has their widths.
using InFeatures = std::vector<std::pair<std::string, int64_t>>;

// What ExpandSweep reads of a model's config.json.
struct ModelShape {
  InFeatures in_features;
  int64_t num_layers = 0;            // num_hidden_layers (0: absent)
  std::vector<LinearSpec> linears;   // of a dense and (where the config has one) an MoE layer
};

StatusOr<std::optional<ModelShape>> ReadShape(const std::string& model, const std::string& root) {
  fs::path dir = model;
  if (!root.empty() && dir.is_relative()) dir = fs::path(root) / dir;
  const fs::path file = dir / "config.json";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::optional<ModelShape>();
  std::ifstream in(file);
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    auto get = [&](const char* key) -> int64_t {
      auto it = j.find(key);
      return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
    };
    Qwen3Dims d;
    d.hidden_size = get("hidden_size");
    d.intermediate_size = get("intermediate_size");
    d.moe_intermediate_size = get("moe_intermediate_size");
    d.num_experts = std::min<int64_t>(get("num_experts"), 1);  // every expert is alike
    // o_proj reads num_attention_heads * head_dim features, which Qwen3 sets apart from hidden.
    const int64_t heads = get("num_attention_heads");
    int64_t head_dim = get("head_dim");
    if (head_dim == 0 && heads > 0) head_dim = d.hidden_size / heads;
    d.q_dim = heads * head_dim;
    InFeatures f;
    std::vector<LinearSpec> linears;
    if (d.intermediate_size > 0) linears = DecoderLinears(d, /*moe_layer=*/false);
    if (d.num_experts > 0 && d.moe_intermediate_size > 0) {
      for (LinearSpec& l : DecoderLinears(d, /*moe_layer=*/true)) linears.push_back(std::move(l));
    }
    for (const LinearSpec& l : linears) {
      const std::pair<std::string, int64_t> entry(l.in_features_key, l.in_features);
      if (l.in_features > 0 && std::find(f.begin(), f.end(), entry) == f.end()) f.push_back(entry);
    }
    ModelShape shape;
    shape.in_features = std::move(f);
    shape.num_layers = get("num_hidden_layers");
    shape.linears = std::move(linears);
    return std::optional<ModelShape>(std::move(shape));
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file.string(), ": ", e.what()));
  }
}

// Why `q` (not yet normalised) makes no sense for any model, or "" when it does.
std::string ModelIndependentReason(const MethodInfo& row, const QuantConfig& q) {
  if (q.wbits < row.min_wbits || q.wbits > row.max_wbits) {
    if (*row.wbits_note != '\0') {
      return absl::StrCat(row.name, " ", row.wbits_note, ": it takes ",
                          BitsRange(row.min_wbits, row.max_wbits), " weight bit",
                          row.max_wbits == 1 ? "" : "s", ", not ", q.wbits);
    }
    return absl::StrCat(row.name, " takes ", BitsRange(row.min_wbits, row.max_wbits),
                        " weight bits, not ", q.wbits);
  }
  if (!row.takes_abits && q.abits != 0) {
    return absl::StrCat(row.name, " is weight-only: activation bits (", q.abits, ") do not apply");
  }
  if (row.takes_abits && (q.abits < row.min_abits || q.abits > row.max_abits)) {
    return absl::StrCat(row.name, " takes ", BitsRange(row.min_abits, row.max_abits),
                        " activation bits, not ", q.abits);
  }
  if (!row.group_size_applies && q.group_size != -1) {
    return absl::StrCat(row.name, " ", row.group_note, ": group ", q.group_size, " does not apply");
  }
  return "";
}

// For a normalised mixed recipe `q` on a model of `shape` (unknown: nothing to check): the
// layers it names exist (else `why`), its canonical form on this model's depth, and every
// quantized linear's group size divides its in_features (else `why`).
Status FitOverrides(const MethodInfo& row, const std::optional<ModelShape>& shape, QuantConfig* q,
                    std::string* why) {
  if (!shape || shape->num_layers <= 0) return absl::OkStatus();
  if (Status s = ValidateOverrideLayers(*q, shape->num_layers); !s.ok()) {
    *why = std::string(s.message());
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(CanonicalizeOverrides(
      row, q, [](std::string_view f) { return std::string(f); }, shape->num_layers));
  for (int64_t l = 0; l < shape->num_layers; ++l) {
    for (const LinearSpec& lin : shape->linears) {
      const LinearPrecision p = ResolveLinearPrecision(*q, l, lin.name);
      if (p.keep_fp() || p.group_size <= 0 || lin.in_features <= 0) continue;
      if (lin.in_features % p.group_size != 0) {
        *why = absl::StrCat("group ", p.group_size, " of ", LinearTypeOf(lin.name),
                            " does not divide ", lin.in_features_key, " = ", lin.in_features,
                            " (config.json)");
        return absl::OkStatus();
      }
    }
  }
  return absl::OkStatus();
}

CalibrationConfig MergeCalibration(const CalibrationOverride& sweep,
                                   const CalibrationOverride& method) {
  CalibrationConfig c;
  c.source = method.source.value_or(sweep.source.value_or(""));
  c.nsamples = method.nsamples.value_or(sweep.nsamples.value_or(0));
  c.seqlen = method.seqlen.value_or(sweep.seqlen.value_or(0));
  c.seed = method.seed.value_or(sweep.seed.value_or(-1));
  c.dtype = method.dtype.value_or(sweep.dtype.value_or("fp32"));
  return c;
}

}  // namespace

QuantConfig SensitivityConfig(const SweepSensitivity& s, int64_t unit) {
  const SweepMethod& m = s.method;
  const MethodInfo& row = **LookupMethod(m.method);
  QuantConfig q;
  q.method = m.method;
  q.wbits = m.wbits.empty() ? row.min_wbits : m.wbits.front();
  const int a = m.abits.empty() ? 0 : m.abits.front();
  q.abits = a == 0 && row.takes_abits ? row.default_abits : a;
  q.group_size = m.group.empty() ? row.default_group_size : m.group.front();
  q.options = m.options;
  QuantOverride all_fp;
  all_fp.wbits = kKeepFpBits;
  QuantOverride only;
  only.wbits = q.wbits;
  if (s.unit == SweepSensitivity::Unit::kLayer) {
    only.layers = absl::StrCat(unit);
  } else {
    only.linear = LinearTypes().at(static_cast<size_t>(unit));
  }
  q.overrides = {all_fp, only};
  return q;
}

StatusOr<ExpandedSweep> ExpandSweep(const SweepSpec& spec, const ExpandOptions& options) {
  if (options.max_jobs > 0) {
    const int64_t grid = SweepGridSize(spec);
    if (grid > options.max_jobs) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sweep ", spec.name, ": its grid is ", grid, " jobs (", spec.models.size(), " models x ",
          GridConfigurations(spec), " configurations x ", spec.tasks.size(),
          " tasks), over the limit of ", options.max_jobs, " jobs per sweep"));
    }
  }
  ExpandedSweep out;
  std::vector<size_t> task_of;  // per job: its task's index (for the final order)
  std::unordered_set<std::string> job_keys;
  std::set<std::string> reported;  // each skip once; model-independent ones not per model

  // Tasks resolved once: the same EvalConfigs serve every model and quant config, and each job
  // then costs a copy and a key (10,000 jobs in milliseconds, bench/sweep.cc).
  std::vector<EvalConfig> evals;
  std::vector<std::string> eval_keys;
  for (const SweepTask& t : spec.tasks) {
    EvalConfig e = spec.eval;
    e.task = t.task;
    if (t.limit) e.limit = *t.limit;
    if (t.num_fewshot) e.num_fewshot = *t.num_fewshot;
    ASSIGN_OR_RETURN(e, NormalizeEvalConfig(e));
    eval_keys.push_back(EvalKey(e));
    evals.push_back(std::move(e));
  }

  auto add_jobs = [&](const SweepModel& model, const QuantConfig& q,
                      const std::optional<CalibrationConfig>& calib) -> Status {
    JobSpec j;
    j.model = model.path;
    j.run_tag = spec.run_tag;
    j.quant = q;
    j.calibration = calib;
    j.priority = spec.priority;
    j.max_attempts = spec.max_attempts;
    j.resources = model.resources;
    j.eval = evals.front();
    ASSIGN_OR_RETURN(JobSpec n, NormalizeJobSpec(j));
    const std::string artifact = n.ArtifactKey();
    for (size_t i = 0; i < evals.size(); ++i) {
      if (!job_keys.insert(absl::StrCat(artifact, "|", eval_keys[i])).second) continue;
      n.eval = evals[i];
      out.jobs.push_back(n);
      task_of.push_back(i);
    }
    return absl::OkStatus();
  };

  // A combination left out for this model (its config.json), reported once per description.
  auto skip_for_model = [&](const SweepModel& model, const QuantConfig& nq, std::string why) {
    std::string what = absl::StrCat(model.path, ": ", DescribeQuant(nq));
    if (reported.insert(what).second) out.skipped.push_back({std::move(what), std::move(why)});
  };

  // `sensitivity:` one artifact per unit of the model (its layers from config.json).
  auto add_sensitivity = [&](const SweepModel& model,
                             const std::optional<ModelShape>& shape) -> Status {
    const SweepSensitivity& sens = *spec.sensitivity;
    const bool by_layer = sens.unit == SweepSensitivity::Unit::kLayer;
    if (by_layer && (!shape || shape->num_layers <= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("sensitivity: unit layer needs num_hidden_layers from ", model.path,
                       "/config.json"));
    }
    if (by_layer && shape->num_layers > kMaxSensitivityLayers) {
      return absl::InvalidArgumentError(
          absl::StrCat("sensitivity: ", model.path, " has ", shape->num_layers,
                       " layers, over the ", kMaxSensitivityLayers, " a sweep expands"));
    }
    const int64_t units =
        by_layer ? shape->num_layers : static_cast<int64_t>(LinearTypes().size());
    const MethodInfo& row = **LookupMethod(sens.method.method);
    for (int64_t u = 0; u < units; ++u) {
      const QuantConfig q = SensitivityConfig(sens, u);
      const std::string reason = ModelIndependentReason(row, q);
      if (!reason.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("sensitivity: ", reason));
      }
      auto normal = NormalizeQuantConfig(q);
      if (!normal.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("sensitivity: ", normal.status().message()));
      }
      QuantConfig nq = *std::move(normal);
      std::string why;
      RETURN_IF_ERROR(FitOverrides(row, shape, &nq, &why));
      if (!why.empty()) {
        skip_for_model(model, nq, std::move(why));
        continue;
      }
      std::optional<CalibrationConfig> calib;
      if (NeedsCalibration(nq)) {
        calib = MergeCalibration(spec.calibration, sens.method.calibration);
      }
      RETURN_IF_ERROR(add_jobs(model, nq, calib));
    }
    return absl::OkStatus();
  };

  for (const SweepModel& model : spec.models) {
    ASSIGN_OR_RETURN(std::optional<ModelShape> shape, ReadShape(model.path, options.model_root));
    const std::optional<InFeatures> in_features =
        shape ? std::optional<InFeatures>(shape->in_features) : std::nullopt;
    if (spec.baseline) RETURN_IF_ERROR(add_jobs(model, QuantConfig{}, std::nullopt));
    for (const SweepMethod& m : spec.methods) {
      const MethodInfo& row = **LookupMethod(m.method);
      const std::vector<int> abits = m.abits.empty() ? std::vector<int>{0} : m.abits;
      const std::vector<int> groups =
          m.group.empty() ? std::vector<int>{row.default_group_size} : m.group;
      for (int w : m.wbits) {
        for (int a : abits) {
          for (int g : groups) {
            QuantConfig q;
            q.method = m.method;
            q.wbits = w;
            q.abits = a == 0 && row.takes_abits ? row.default_abits : a;
            q.group_size = g;
            q.options = m.options;
            q.overrides = m.overrides;
            const std::string reason = ModelIndependentReason(row, q);
            if (!reason.empty()) {
              const std::string what = DescribeQuant(q);
              if (reported.insert(what).second) out.skipped.push_back({what, reason});
              continue;
            }
            ASSIGN_OR_RETURN(QuantConfig nq, NormalizeQuantConfig(q));
            if (!nq.overrides.empty()) {
              std::string why;
              RETURN_IF_ERROR(FitOverrides(row, shape, &nq, &why));
              if (!why.empty()) {
                skip_for_model(model, nq, std::move(why));
                continue;
              }
            } else if (nq.group_size > 0 && in_features) {
              std::string why;
              for (const auto& [key, features] : *in_features) {
                if (features % nq.group_size != 0) {
                  why = absl::StrCat("group ", nq.group_size, " does not divide ", key, " = ",
                                     features, " (config.json)");
                  break;
                }
              }
              if (!why.empty()) {
                skip_for_model(model, nq, std::move(why));
                continue;
              }
            }
            std::optional<CalibrationConfig> calib;
            if (NeedsCalibration(nq)) calib = MergeCalibration(spec.calibration, m.calibration);
            RETURN_IF_ERROR(add_jobs(model, nq, calib));
          }
        }
      }
    }
    if (spec.sensitivity) RETURN_IF_ERROR(add_sensitivity(model, shape));
  }
  if (out.jobs.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep ", spec.name, ": every combination was skipped"));
  }
  // Task-major order (jobs are leased oldest first): the first jobs of a sweep need different
  // artifacts, so parallel workers quantize different models instead of one waiting for the
  // other's artifact; later tasks then reuse what the first produced.
  std::vector<size_t> order(out.jobs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return task_of[a] < task_of[b]; });
  std::vector<JobSpec> sorted;
  sorted.reserve(order.size());
  for (size_t i : order) sorted.push_back(std::move(out.jobs[i]));
  out.jobs = std::move(sorted);
  return out;
}

}  // namespace bitsweep
