#include "common/results_table.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/job_spec.h"

namespace bitsweep {
namespace {

struct RowKey {
  std::string model;
  int baseline_last;  // 0 for the baseline: sorts first
  std::string method;
  int wbits, abits, group;
  std::string label;
  bool operator<(const RowKey& o) const {
    return std::tie(model, baseline_last, method, wbits, abits, group, label) <
           std::tie(o.model, o.baseline_last, o.method, o.wbits, o.abits, o.group, o.label);
  }
};

// Custom tasks are file paths; the column shows the file's stem ("facts" for /x/facts.jsonl).
std::string TaskColumnName(const std::string& task) {
  if (task.size() > 6 && task.compare(task.size() - 6, 6, ".jsonl") == 0) {
    return std::filesystem::path(task).stem().string();
  }
  return task;
}

}  // namespace

ResultsTable PivotResults(const std::vector<ResultInput>& inputs) {
  ResultsTable table;
  std::map<RowKey, ResultsRow> rows;
  for (const ResultInput& in : inputs) {
    auto spec = JobSpecFromJson(in.spec_json);
    if (!spec.ok()) {
      ++table.unreadable;
      continue;
    }
    const bool ppl = in.metric == "ppl";
    if (!ppl && in.metric != "acc") continue;  // the headline metric of each task
    const std::string name = absl::StrCat(TaskColumnName(spec->eval.task), ppl ? " ppl" : " acc");
    if (std::none_of(table.columns.begin(), table.columns.end(),
                     [&](const ResultsColumn& c) { return c.name == name; })) {
      table.columns.push_back({name, spec->eval.task, in.metric, ppl});
    }
    const QuantConfig& q = spec->quant;
    const bool fp = q.method == "fp";
    const std::string label = fp ? std::string("FP (baseline)") : DescribeQuant(q);
    RowKey key{spec->model, fp ? 0 : 1, q.method, q.wbits, q.abits, q.group_size, label};
    auto [it, inserted] = rows.try_emplace(key);
    ResultsRow& row = it->second;
    if (inserted) {
      row.model = spec->model;
      row.method = q.method;
      row.wbits = q.wbits;
      row.abits = q.abits;
      row.group = q.group_size;
      row.label = label;
      row.baseline = fp;
      row.series =
          fp ? std::string("fp") : absl::StrReplaceAll(label, {{absl::StrCat(" w", q.wbits), " "}});
      if (!fp) {
        // "smoothquant w8a8" -> "smoothquant a8", "gptq w4 g64" -> "gptq g64".
        row.series = absl::StrReplaceAll(row.series, {{"  ", " "}});
        while (!row.series.empty() && row.series.back() == ' ') row.series.pop_back();
      }
    }
    row.cells[name] = {in.value, in.stderr_value, in.n, in.job_id};
  }
  table.rows.reserve(rows.size());
  for (auto& [key, row] : rows) table.rows.push_back(std::move(row));
  return table;
}

std::string ResultsTableToJson(const ResultsTable& table) {
  nlohmann::json columns = nlohmann::json::array();
  for (const auto& c : table.columns) {
    columns.push_back({{"name", c.name},
                       {"task", c.task},
                       {"metric", c.metric},
                       {"lower_is_better", c.lower_is_better}});
  }
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : table.rows) {
    nlohmann::json cells = nlohmann::json::object();
    for (const auto& [name, cell] : r.cells) {
      cells[name] = {{"value", cell.value},
                     {"stderr", cell.stderr_value},
                     {"n", cell.n},
                     {"job_id", cell.job_id}};
    }
    rows.push_back({{"model", r.model},
                    {"method", r.method},
                    {"wbits", r.wbits},
                    {"abits", r.abits},
                    {"group", r.group},
                    {"label", r.label},
                    {"series", r.series},
                    {"baseline", r.baseline},
                    {"cells", std::move(cells)}});
  }
  return nlohmann::json{{"columns", std::move(columns)}, {"rows", std::move(rows)}}.dump();
}

std::string FormatResultValue(const ResultsColumn& column, double value) {
  return column.lower_is_better ? absl::StrFormat("%.3f", value) : absl::StrFormat("%.4f", value);
}

}  // namespace bitsweep
