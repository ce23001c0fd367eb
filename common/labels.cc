#include "common/labels.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/catalog.h"

namespace bitsweep {
namespace {

const std::string* FindField(const std::vector<LabelField>& fields, const std::string& name) {
  for (const auto& [n, v] : fields) {
    if (n == name) return &v;
  }
  return nullptr;
}

bool IsPerplexity(const EvalConfig& eval) {
  auto task = LookupTask(eval.task);
  return task.ok() && (*task)->kind == TaskKind::kPerplexity;
}

}  // namespace

std::vector<std::string> DistinctLabels(const std::vector<LabelParts>& items) {
  // Per group: its size, every field name in order of first appearance, the values each takes
  // and how many items have it (an item lacking a field differs from those that have it).
  struct GroupFields {
    size_t size = 0;
    std::vector<std::string> names;
    std::map<std::string, std::set<std::string>> values;
    std::map<std::string, size_t> present;
  };
  std::map<std::string, GroupFields> groups;
  for (const LabelParts& item : items) {
    GroupFields& g = groups[item.group];
    ++g.size;
    for (const auto& [name, value] : item.fields) {
      if (g.values.count(name) == 0) g.names.push_back(name);
      g.values[name].insert(value);
      ++g.present[name];
    }
  }
  std::vector<std::string> labels;
  labels.reserve(items.size());
  for (const LabelParts& item : items) {
    const GroupFields& g = groups.at(item.group);
    std::string label = item.base;
    for (const std::string& name : g.names) {
      const bool differs = g.values.at(name).size() > 1 || g.present.at(name) < g.size;
      const bool always =
          std::find(item.always.begin(), item.always.end(), name) != item.always.end();
      if (!differs && !always) continue;
      const std::string* value = FindField(item.fields, name);
      absl::StrAppend(&label, " ", name, "=", value ? *value : std::string("-"));
    }
    labels.push_back(std::move(label));
  }
  return labels;
}

std::string QuantSeries(const std::string& label, int wbits) {
  std::string series = absl::StrReplaceAll(label, {{absl::StrCat(" w", wbits), " "}});
  series = absl::StrReplaceAll(series, {{"  ", " "}});
  while (!series.empty() && series.back() == ' ') series.pop_back();
  return series;
}

std::vector<LabelField> CalibrationFields(const JobSpec& spec) {
  if (!spec.calibration) return {};
  const CalibrationConfig& c = *spec.calibration;
  return {{"calib", c.source},
          {"nsamples", absl::StrCat(c.nsamples)},
          {"calib_seqlen", absl::StrCat(c.seqlen)},
          {"seed", absl::StrCat(c.seed)},
          {"calib_dtype", c.dtype}};
}

std::string LimitFieldName(const EvalConfig& eval) {
  return IsPerplexity(eval) ? "windows" : "limit";
}

std::vector<LabelField> EvalFields(const EvalConfig& eval) {
  std::vector<LabelField> fields;
  if (IsPerplexity(eval)) fields.emplace_back("seqlen", absl::StrCat(eval.seqlen));
  fields.emplace_back(LimitFieldName(eval), eval.limit > 0 ? absl::StrCat(eval.limit) : "all");
  fields.emplace_back("shots", absl::StrCat(eval.num_fewshot));
  fields.emplace_back("batch", absl::StrCat(eval.batch_size));
  fields.emplace_back("dtype", eval.dtype);
  return fields;
}

std::vector<JobLabel> LabelJobs(const std::vector<JobSpec>& specs) {
  std::vector<LabelParts> quant, eval;
  quant.reserve(specs.size());
  eval.reserve(specs.size());
  for (const JobSpec& s : specs) {
    const std::string described = DescribeQuant(s.quant);
    // Compared within the model's series (the label without its bit-width), so that one
    // series is labelled alike at every width.
    const std::string series = QuantSeries(described, s.quant.wbits);
    quant.push_back({absl::StrCat(s.model, "\n", series), described, CalibrationFields(s), {}});
    LabelParts e{s.eval.task, s.eval.task, EvalFields(s.eval), {}};
    if (s.eval.limit > 0) e.always.push_back(LimitFieldName(s.eval));
    eval.push_back(std::move(e));
  }
  const std::vector<std::string> q = DistinctLabels(quant), e = DistinctLabels(eval);
  std::vector<JobLabel> out(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) out[i] = {q[i], e[i]};
  return out;
}

}  // namespace bitsweep
