#include "common/sweep.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dtype.h"
#include "common/mixed_precision.h"
#include "common/sweep_yaml_reader.h"
#include "common/utf8.h"

namespace bitsweep {
namespace {

namespace fs = std::filesystem;

using sweep_yaml::AV;
using sweep_yaml::S;
using sweep_yaml::YamlReader;

// A present, non-null child of a mapping.
YAML::Node Child(const YAML::Node& map, const char* key) {
  YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
  return n;
}

Status ReadResources(const YamlReader& r, const YAML::Node& n, std::string_view field,
                     Resources* res) {
  if (YAML::Node v = Child(n, "devices")) {
    ASSIGN_OR_RETURN(int64_t d, r.Int(v, YamlReader::Join(field, "devices"), 1, 1 << 16));
    res->devices = static_cast<int>(d);
  }
  if (YAML::Node v = Child(n, "tp")) {
    ASSIGN_OR_RETURN(int64_t tp, r.Int(v, YamlReader::Join(field, "tp"), 1, 1 << 16));
    res->tp = static_cast<int>(tp);
  }
  if (YAML::Node v = Child(n, "memory_gb")) {
    ASSIGN_OR_RETURN(res->memory_gb, r.Double(v, YamlReader::Join(field, "memory_gb"), 0));
  }
  if (res->tp > res->devices) {
    return r.Error(n, YamlReader::Join(field, "tp"),
                   absl::StrCat("tp ", res->tp, " exceeds devices ", res->devices));
  }
  return absl::OkStatus();
}

Status ReadCalibration(const YamlReader& r, const YAML::Node& n, std::string_view field,
                       CalibrationOverride* c) {
  RETURN_IF_ERROR(r.CheckKeys(n, field, {"source", "nsamples", "seqlen", "seed", "dtype"}));
  if (YAML::Node v = Child(n, "source")) {
    ASSIGN_OR_RETURN(c->source, r.String(v, YamlReader::Join(field, "source")));
  }
  if (YAML::Node v = Child(n, "nsamples")) {
    ASSIGN_OR_RETURN(c->nsamples, r.Int(v, YamlReader::Join(field, "nsamples"), 1, 1 << 30));
  }
  if (YAML::Node v = Child(n, "seqlen")) {
    ASSIGN_OR_RETURN(c->seqlen, r.Int(v, YamlReader::Join(field, "seqlen"), 2, 1 << 24));
  }
  if (YAML::Node v = Child(n, "seed")) {
    ASSIGN_OR_RETURN(
        c->seed, r.Int(v, YamlReader::Join(field, "seed"), 0, std::numeric_limits<int64_t>::max()));
  }
  if (YAML::Node v = Child(n, "dtype")) {
    ASSIGN_OR_RETURN(c->dtype, r.DType(v, YamlReader::Join(field, "dtype")));
  }
  return absl::OkStatus();
}

// `overrides:` of a method entry: a list of {layers, linear, wbits, group}; checked against
// every method the entry names (CanonicalizeOverrides) so errors carry the file position.
Status ReadOverrides(const YamlReader& r, const YAML::Node& list, const std::string& field,
                     std::vector<QuantOverride>* out) {
  if (!list.IsSequence()) return r.Error(list, field, "expected a list");
  RETURN_IF_ERROR(r.CheckLength(list, field));
  for (size_t k = 0; k < list.size(); ++k) {
    const YAML::Node e = list[k];
    const std::string f = YamlReader::Index(field, k);
    RETURN_IF_ERROR(r.CheckKeys(e, f, {"layers", "linear", "wbits", "group"}));
    QuantOverride o;
    if (YAML::Node v = Child(e, "layers")) {
      ASSIGN_OR_RETURN(o.layers, r.String(v, f + ".layers"));
      auto parsed = ParseLayerRanges(o.layers);
      if (!parsed.ok()) return r.Error(v, f + ".layers", S(parsed.status().message()));
    }
    if (YAML::Node v = Child(e, "linear")) {
      if (v.IsSequence()) {
        std::vector<std::string> names;
        for (size_t j = 0; j < v.size(); ++j) {
          ASSIGN_OR_RETURN(std::string name, r.String(v[j], YamlReader::Index(f + ".linear", j)));
          names.push_back(name);
        }
        o.linear = absl::StrJoin(names, ",");
      } else {
        ASSIGN_OR_RETURN(o.linear, r.String(v, f + ".linear"));
      }
    }
    if (YAML::Node v = Child(e, "wbits")) {
      ASSIGN_OR_RETURN(int64_t b, r.Int(v, f + ".wbits", 1, kKeepFpBits));
      o.wbits = static_cast<int>(b);
    }
    if (YAML::Node v = Child(e, "group")) {
      ASSIGN_OR_RETURN(int64_t g, r.Int(v, f + ".group", -1, 1 << 24));
      if (g == 0) return r.Error(v, f + ".group", "must be -1 (per channel) or positive");
      o.group_size = static_cast<int>(g);
    }
    out->push_back(std::move(o));
  }
  return absl::OkStatus();
}

// The overrides of `sm` on its first width and group: what depends on the method (bits it
// takes, group sizes, FP linears) is the same for all of them.
Status CheckOverrides(const YamlReader& r, const YAML::Node& node, const std::string& field,
                      const SweepMethod& sm) {
  if (sm.overrides.empty()) return absl::OkStatus();
  const MethodInfo& row = **LookupMethod(sm.method);
  QuantConfig q;
  q.method = sm.method;
  q.wbits = row.min_wbits;
  for (int w : sm.wbits) {
    if (w >= row.min_wbits && w <= row.max_wbits) q.wbits = w;
  }
  q.abits = row.takes_abits ? row.default_abits : 0;
  q.group_size = row.group_size_applies ? row.default_group_size : -1;
  q.options = sm.options;
  q.overrides = sm.overrides;
  auto n = NormalizeQuantConfig(q);
  const std::string prefix = "quant.overrides";
  const std::string message = n.ok() ? "" : std::string(n.status().message());
  if (message.rfind(prefix, 0) == 0) {
    // "quant.overrides[1].wbits: why" -> "methods[0].overrides[1].wbits: why"
    const size_t colon = message.find(": ");
    size_t k = 0;  // the entry's own position where the message names one
    const bool entry = std::sscanf(message.c_str() + prefix.size(), "[%zu]", &k) == 1 &&
                       node.IsSequence() && k < node.size();
    return r.Error(entry ? node[k] : node,
                   field + message.substr(prefix.size(), colon - prefix.size()),
                   colon == std::string::npos ? "" : message.substr(colon + 2));
  }
  return absl::OkStatus();
}

// One entry of `methods:` (or the `sensitivity:` block when `unit` is set, which also takes
// `unit:` and no overrides) appended to *out, one SweepMethod per method it names.
Status ReadMethod(const YamlReader& r, const YAML::Node& n, const std::string& field,
                  SweepSensitivity::Unit* unit, std::vector<SweepMethod>* out) {
  std::vector<std::string> keys = {"method", "wbits",       "abits",
                                   "group",  "options",     "calibration"};
  keys.push_back(unit != nullptr ? "unit" : "overrides");
  RETURN_IF_ERROR(r.CheckKeys(n, field, keys));
  if (unit != nullptr) {
    const YAML::Node u = Child(n, "unit");
    if (!u) return r.Error(n, field + ".unit", "missing (layer or linear_type)");
    ASSIGN_OR_RETURN(std::string text, r.String(u, field + ".unit"));
    if (text == "layer") {
      *unit = SweepSensitivity::Unit::kLayer;
    } else if (text == "linear_type") {
      *unit = SweepSensitivity::Unit::kLinearType;
    } else {
      return r.Error(u, field + ".unit",
                     absl::StrCat("\"", text, "\" is not layer or linear_type"));
    }
  }
  SweepMethod base;
  if (YAML::Node v = Child(n, "wbits")) {
    ASSIGN_OR_RETURN(base.wbits, r.IntList(v, field + ".wbits", 0, 64));
  }
  if (YAML::Node v = Child(n, "abits")) {
    ASSIGN_OR_RETURN(base.abits, r.IntList(v, field + ".abits", 0, 64));
  }
  if (YAML::Node v = Child(n, "group")) {
    ASSIGN_OR_RETURN(base.group, r.IntList(v, field + ".group", -1, 1 << 24));
    for (size_t g = 0; g < base.group.size(); ++g) {
      if (base.group[g] == 0) {
        return r.Error(v.IsSequence() ? v[g] : v, field + ".group",
                       "must be -1 (per channel) or positive");
      }
    }
  }
  if (YAML::Node v = Child(n, "calibration")) {
    RETURN_IF_ERROR(ReadCalibration(r, v, field + ".calibration", &base.calibration));
  }
  const YAML::Node m = Child(n, "method");
  if (!m) return r.Error(n, field + ".method", "missing");
  std::vector<std::pair<std::string, YAML::Node>> names;
  if (m.IsSequence()) {
    RETURN_IF_ERROR(r.CheckLength(m, field + ".method"));
    for (size_t k = 0; k < m.size(); ++k) {
      ASSIGN_OR_RETURN(std::string s, r.String(m[k], YamlReader::Index(field + ".method", k)));
      names.emplace_back(s, m[k]);
    }
  } else {
    ASSIGN_OR_RETURN(std::string s, r.String(m, field + ".method"));
    names.emplace_back(s, m);
  }
  if (names.empty()) return r.Error(m, field + ".method", "empty list");
  for (const auto& [name, node] : names) {
    auto row = LookupMethod(name);
    if (!row.ok()) return r.Error(node, field + ".method", S(row.status().message()));
    if ((*row)->baseline) {
      return r.Error(node, field + ".method",
                     "the unquantized baseline is requested with `baseline: true`");
    }
    SweepMethod sm = base;
    sm.method = (*row)->name;  // as the catalog spells it, whatever the case written
    if (sm.wbits.empty()) {
      if ((*row)->min_wbits != (*row)->max_wbits) {
        return r.Error(n, field + ".wbits",
                       absl::StrCat("missing (", name, " takes ",
                                    BitsRange((*row)->min_wbits, (*row)->max_wbits), ")"));
      }
      sm.wbits = {(*row)->min_wbits};
    }
    if (YAML::Node opts = Child(n, "options")) {
      if (!opts.IsMap()) return r.Error(opts, field + ".options", "expected a mapping");
      for (auto it = opts.begin(); it != opts.end(); ++it) {
        const std::string key = it->first.Scalar();
        const std::string of = absl::StrCat(field, ".options.", key);
        auto opt = LookupOption(**row, key);
        if (!opt.ok()) return r.Error(it->first, of, S(opt.status().message()));
        if (!it->second.IsScalar()) return r.Error(it->second, of, "expected a scalar");
        auto value = NormalizeOptionValue(**opt, it->second.Scalar());
        if (!value.ok()) return r.Error(it->second, of, S(value.status().message()));
        sm.options[key] = *value;
      }
    }
    if (YAML::Node v = Child(n, "overrides")) {
      RETURN_IF_ERROR(ReadOverrides(r, v, field + ".overrides", &sm.overrides));
      RETURN_IF_ERROR(CheckOverrides(r, v, field + ".overrides", sm));
    }
    out->push_back(std::move(sm));
  }
  return absl::OkStatus();
}

Status ReadMethods(const YamlReader& r, const YAML::Node& list, std::vector<SweepMethod>* out) {
  if (!list.IsSequence()) return r.Error(list, "methods", "expected a list");
  RETURN_IF_ERROR(r.CheckLength(list, "methods"));
  for (size_t i = 0; i < list.size(); ++i) {
    RETURN_IF_ERROR(ReadMethod(r, list[i], YamlReader::Index("methods", i), nullptr, out));
  }
  return absl::OkStatus();
}

// A model's `name:` (a display name) must say something and tell the model from the others:
// not blank, not another model's name, and one folder listed twice gets one name.
Status CheckModelName(const YamlReader& r, const YAML::Node& node, const std::string& field,
                      const std::vector<SweepModel>& earlier, const SweepModel& m,
                      std::map<std::string, size_t>* named) {
  const std::string at = field + ".name";
  if (absl::StripAsciiWhitespace(m.name).empty()) return r.Error(node, at, "empty name");
  if (m.name.size() > kMaxModelNameBytes) {
    return r.Error(node, at,
                   absl::StrCat("a name of ", m.name.size(), " bytes; at most ",
                                kMaxModelNameBytes, " are allowed"));
  }
  if (auto it = named->find(m.name); it != named->end()) {
    return r.Error(node, at,
                   absl::StrCat("\"", m.name, "\" already names models[", it->second,
                                "]: each model's name must be unique"));
  }
  for (size_t k = 0; k < earlier.size(); ++k) {
    if (earlier[k].path == m.path && !earlier[k].name.empty()) {
      return r.Error(node, at,
                     absl::StrCat(m.path, " is already named \"", earlier[k].name, "\" (models[",
                                  k, "])"));
    }
  }
  named->emplace(m.name, earlier.size());
  return absl::OkStatus();
}

// `early_abort: {ppl_ratio: 3.0, on: wikitext2, hold_seconds: 300}`: `on` must be a perplexity
// task the sweep runs (the rule compares its ppl with the baseline's).
StatusOr<EarlyAbortRule> ReadEarlyAbort(const YamlReader& r, const YAML::Node& n,
                                        const std::vector<SweepTask>& tasks) {
  RETURN_IF_ERROR(r.CheckKeys(n, "early_abort", {"ppl_ratio", "on", "hold_seconds"}));
  EarlyAbortRule rule;
  const YAML::Node ratio = Child(n, "ppl_ratio");
  if (!ratio) return r.Error(n, "early_abort.ppl_ratio", "missing");
  ASSIGN_OR_RETURN(rule.ppl_ratio, r.Double(ratio, "early_abort.ppl_ratio", 0));
  if (!(rule.ppl_ratio > 1)) {
    return r.Error(ratio, "early_abort.ppl_ratio",
                   absl::StrCat("must be above 1 (the FP baseline's ppl times it), got ",
                                ratio.Scalar()));
  }
  const YAML::Node on = Child(n, "on");
  if (!on) return r.Error(n, "early_abort.on", "missing");
  ASSIGN_OR_RETURN(rule.on, r.String(on, "early_abort.on"));
  auto row = LookupTask(rule.on);
  if (!row.ok() || (*row)->kind != TaskKind::kPerplexity || IsTaskPath(rule.on)) {
    return r.Error(on, "early_abort.on",
                   absl::StrCat("\"", rule.on, "\" is not a perplexity task (use wikitext2 or c4)"));
  }
  rule.on = (*row)->name;
  const bool listed = std::any_of(tasks.begin(), tasks.end(),
                                  [&](const SweepTask& t) { return t.task == rule.on; });
  if (!listed) {
    return r.Error(on, "early_abort.on",
                   absl::StrCat("\"", rule.on, "\" is not one of the sweep's tasks"));
  }
  if (YAML::Node v = Child(n, "hold_seconds")) {
    ASSIGN_OR_RETURN(rule.hold_seconds, r.Double(v, "early_abort.hold_seconds", 0));
  }
  return rule;
}

StatusOr<SweepSpec> ParseImpl(const YamlReader& r, const YAML::Node& root) {
  if (!root.IsMap()) return r.Error(root, "sweep", "expected a mapping at the top level");
  RETURN_IF_ERROR(r.CheckKeys(root, "",
                              {"name", "priority", "max_attempts", "baseline", "resources",
                               "models", "methods", "tasks", "calibration", "eval",
                               "early_abort", "sensitivity", "run_tag"}));
  SweepSpec s;
  const YAML::Node name = Child(root, "name");
  if (!name) return r.Error(root, "name", "missing");
  ASSIGN_OR_RETURN(s.name, r.String(name, "name"));
  if (s.name.empty()) return r.Error(name, "name", "empty");
  if (YAML::Node v = Child(root, "run_tag")) {
    ASSIGN_OR_RETURN(s.run_tag, r.String(v, "run_tag"));
    const std::string problem = RunTagProblem(s.run_tag);
    if (!problem.empty()) return r.Error(v, "run_tag", problem);
  }
  if (YAML::Node v = Child(root, "priority")) {
    ASSIGN_OR_RETURN(int64_t p, r.Int(v, "priority", -1000000, 1000000));
    s.priority = static_cast<int>(p);
  }
  if (YAML::Node v = Child(root, "max_attempts")) {
    ASSIGN_OR_RETURN(int64_t a, r.Int(v, "max_attempts", 1, 1000));
    s.max_attempts = static_cast<int>(a);
  }
  if (YAML::Node v = Child(root, "baseline")) {
    ASSIGN_OR_RETURN(s.baseline, r.Bool(v, "baseline"));
  }
  Resources defaults;
  if (YAML::Node v = Child(root, "resources")) {
    RETURN_IF_ERROR(r.CheckKeys(v, "resources", {"devices", "memory_gb", "tp"}));
    RETURN_IF_ERROR(ReadResources(r, v, "resources", &defaults));
  }

  const YAML::Node models = Child(root, "models");
  if (!models) return r.Error(root, "models", "missing");
  if (!models.IsSequence() || models.size() == 0) {
    return r.Error(models, "models", "expected a non-empty list");
  }
  RETURN_IF_ERROR(r.CheckLength(models, "models"));
  std::map<std::string, size_t> named;  // name -> the model entry that has it
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string field = YamlReader::Index("models", i);
    SweepModel m;
    m.resources = defaults;
    YAML::Node name_node(YAML::NodeType::Undefined);
    if (models[i].IsMap()) {
      RETURN_IF_ERROR(
          r.CheckKeys(models[i], field, {"path", "name", "devices", "memory_gb", "tp"}));
      const YAML::Node p = Child(models[i], "path");
      if (!p) return r.Error(models[i], field + ".path", "missing");
      ASSIGN_OR_RETURN(m.path, r.String(p, field + ".path"));
      if (YAML::Node v = Child(models[i], "name")) {
        name_node.reset(v);  // reset: operator= would write into the tree
        ASSIGN_OR_RETURN(m.name, r.String(v, field + ".name"));
      }
      RETURN_IF_ERROR(ReadResources(r, models[i], field, &m.resources));
    } else {
      ASSIGN_OR_RETURN(m.path, r.String(models[i], field));
    }
    if (m.path.empty()) return r.Error(models[i], field, "empty path");
    m.path = NormalizePath(m.path);
    if (name_node) RETURN_IF_ERROR(CheckModelName(r, name_node, field, s.models, m, &named));
    s.models.push_back(std::move(m));
  }

  if (YAML::Node v = Child(root, "methods")) RETURN_IF_ERROR(ReadMethods(r, v, &s.methods));

  const YAML::Node tasks = Child(root, "tasks");
  if (!tasks) return r.Error(root, "tasks", "missing");
  if (!tasks.IsSequence() || tasks.size() == 0) {
    return r.Error(tasks, "tasks", "expected a non-empty list");
  }
  RETURN_IF_ERROR(r.CheckLength(tasks, "tasks"));
  for (size_t i = 0; i < tasks.size(); ++i) {
    const std::string field = YamlReader::Index("tasks", i);
    SweepTask t;
    YAML::Node name_node = tasks[i];
    if (tasks[i].IsMap()) {
      RETURN_IF_ERROR(r.CheckKeys(tasks[i], field, {"task", "limit", "num_fewshot"}));
      name_node.reset(Child(tasks[i], "task"));  // reset: operator= would write into the tree
      if (!name_node) return r.Error(tasks[i], field + ".task", "missing");
      if (YAML::Node v = Child(tasks[i], "limit")) {
        ASSIGN_OR_RETURN(t.limit,
                         r.Int(v, field + ".limit", 0, std::numeric_limits<int32_t>::max()));
      }
      if (YAML::Node v = Child(tasks[i], "num_fewshot")) {
        ASSIGN_OR_RETURN(int64_t k, r.Int(v, field + ".num_fewshot", 0, 1000));
        t.num_fewshot = static_cast<int>(k);
      }
    }
    ASSIGN_OR_RETURN(t.task, r.String(name_node, field));
    auto row = LookupTask(t.task);
    if (!row.ok()) return r.Error(name_node, field, S(row.status().message()));
    if (std::string_view((*row)->name) != "file") t.task = (*row)->name;  // "MMLU" is mmlu
    if ((*row)->kind == TaskKind::kPerplexity && t.num_fewshot.value_or(0) != 0) {
      return r.Error(tasks[i], field + ".num_fewshot", "perplexity tasks take no shots");
    }
    s.tasks.push_back(std::move(t));
  }

  if (YAML::Node v = Child(root, "calibration")) {
    RETURN_IF_ERROR(ReadCalibration(r, v, "calibration", &s.calibration));
  }
  if (YAML::Node e = Child(root, "eval")) {
    RETURN_IF_ERROR(r.CheckKeys(e, "eval", {"seqlen", "batch_size", "dtype", "limit"}));
    if (YAML::Node v = Child(e, "seqlen")) {
      ASSIGN_OR_RETURN(s.eval.seqlen, r.Int(v, "eval.seqlen", 2, 1 << 24));
    }
    if (YAML::Node v = Child(e, "batch_size")) {
      ASSIGN_OR_RETURN(s.eval.batch_size, r.Int(v, "eval.batch_size", 1, 1 << 20));
    }
    if (YAML::Node v = Child(e, "limit")) {
      ASSIGN_OR_RETURN(s.eval.limit,
                       r.Int(v, "eval.limit", 0, std::numeric_limits<int32_t>::max()));
    }
    if (YAML::Node v = Child(e, "dtype")) {
      ASSIGN_OR_RETURN(s.eval.dtype, r.DType(v, "eval.dtype"));
    }
  }
  if (YAML::Node v = Child(root, "sensitivity")) {
    SweepSensitivity sens;
    std::vector<SweepMethod> one;
    RETURN_IF_ERROR(ReadMethod(r, v, "sensitivity", &sens.unit, &one));
    if (one.size() != 1) return r.Error(v, "sensitivity.method", "expected one method");
    sens.method = std::move(one.front());
    const SweepMethod& sm = sens.method;
    if (sm.wbits.size() > 1 || sm.abits.size() > 1 || sm.group.size() > 1) {
      return r.Error(v, "sensitivity", "expects one wbits, one abits and one group");
    }
    s.sensitivity = std::move(sens);
  }
  if (s.methods.empty() && !s.baseline && !s.sensitivity) {
    return r.Error(root, "methods", "no methods and baseline: false: the sweep has no jobs");
  }
  if (YAML::Node v = Child(root, "early_abort")) {
    ASSIGN_OR_RETURN(s.early_abort, ReadEarlyAbort(r, v, s.tasks));
  }
  return s;
}

// The relative paths of `s` made absolute under `base`.
void ResolvePaths(const std::string& base, SweepSpec* s) {
  auto resolve = [&base](std::string* p) {
    if (!p->empty() && fs::path(*p).is_relative())
      *p = NormalizePath((fs::path(base) / *p).string());
  };
  auto resolve_source = [&resolve](CalibrationOverride* c) {
    if (c->source && *c->source != "c4" && *c->source != "wikitext2") resolve(&*c->source);
  };
  for (SweepModel& m : s->models) resolve(&m.path);
  for (SweepTask& t : s->tasks) {
    if (IsTaskPath(t.task)) resolve(&t.task);
  }
  resolve_source(&s->calibration);
  for (SweepMethod& m : s->methods) resolve_source(&m.calibration);
  if (s->sensitivity) resolve_source(&s->sensitivity->method.calibration);
}

}  // namespace

StatusOr<SweepSpec> ParseSweepYaml(std::string_view yaml, std::string_view source_name,
                                   const ParseOptions& options) {
  const YamlReader reader{std::string(source_name)};
  if (yaml.size() > kMaxSweepYamlBytes) {
    return absl::InvalidArgumentError(absl::StrCat(AV(source_name), ": the sweep file is ",
                                                   yaml.size(), " bytes; at most ",
                                                   kMaxSweepYamlBytes, " are allowed"));
  }
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    ASSIGN_OR_RETURN(SweepSpec spec, ParseImpl(reader, root));
    if (!options.base_dir.empty()) ResolvePaths(options.base_dir, &spec);
    return spec;
  } catch (const YAML::Exception& e) {
    return reader.Error(e.mark, "syntax", e.msg);
  }
}

std::map<std::string, std::string> ModelNames(const SweepSpec& spec) {
  std::map<std::string, std::string> names;
  for (const SweepModel& m : spec.models) {
    if (!m.name.empty()) names[NormalizePath(m.path)] = m.name;
  }
  return names;
}

StatusOr<SweepSpec> ParseSweepFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open the sweep file"));
  std::ostringstream text;
  text << in.rdbuf();
  ParseOptions options;
  options.base_dir = fs::absolute(path).parent_path().string();
  return ParseSweepYaml(text.str(), path, options);
}

}  // namespace bitsweep
