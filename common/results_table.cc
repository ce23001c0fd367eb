#include "common/results_table.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/catalog.h"
#include "common/job_spec.h"
#include "common/labels.h"

namespace bitsweep {
namespace {

using nlohmann::json;

struct RowKey {
  std::string model;
  int baseline_last;  // 0 for the baseline: sorts first
  std::string method;
  int wbits, abits, group;
  std::string artifact_key;
  bool operator<(const RowKey& o) const {
    return std::tie(model, baseline_last, method, wbits, abits, group, artifact_key) <
           std::tie(o.model, o.baseline_last, o.method, o.wbits, o.abits, o.group,
                    o.artifact_key);
  }
};

// Custom tasks are file paths; the column shows the file's stem ("facts" for /x/facts.jsonl).
std::string TaskColumnName(const std::string& task) {
  if (IsTaskPath(task)) return std::filesystem::path(task).stem().string();
  return task;
}

// The last two components of a data file's path ("c4/c4-validation.00000-of-00008.json"): which
// file of a task's folder was read, whatever folder the worker's data directory was.
std::string DataFileName(const std::string& path) {
  const std::filesystem::path p(path);
  const std::string parent = p.parent_path().filename().string();
  return parent.empty() ? p.filename().string() : parent + "/" + p.filename().string();
}

// What a result's provenance says about its evaluation: the data file and protocol (when the
// task reports them) and whether only part of the data was scored.
struct EvalFacts {
  std::string data, protocol;
  bool subset = false;
};

EvalFacts ReadEvalFacts(const std::string& provenance_json, const EvalConfig& spec) {
  EvalFacts facts;
  facts.subset = spec.limit > 0;  // unless the provenance says how much was scored
  if (provenance_json.empty()) return facts;
  const json prov = json::parse(provenance_json, nullptr, false);
  if (!prov.is_object() || !prov.contains("eval") || !prov["eval"].is_object()) return facts;
  const json& e = prov["eval"];
  auto text = [&](const char* key) {
    auto it = e.find(key);
    return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number = [&](const char* key) {
    auto it = e.find(key);
    return it != e.end() && it->is_number() ? it->get<double>() : -1.0;
  };
  if (!text("file").empty()) facts.data = DataFileName(text("file"));
  if (!text("source").empty()) facts.data = DataFileName(text("source"));
  facts.protocol = text("protocol");
  if (e.contains("limited") && e["limited"].is_boolean()) {
    facts.subset = e["limited"].get<bool>();
  } else if (number("windows") >= 0 && number("stream_tokens") >= 0 && number("seqlen") > 0) {
    // Perplexity scores floor(stream / seqlen) windows unless a limit stopped it earlier.
    facts.subset = number("windows") < std::floor(number("stream_tokens") / number("seqlen"));
  }
  return facts;
}

struct ColumnBuild {
  ResultsColumn column;
  std::string base;   // "wikitext2 ppl"
  std::string match;  // the key without what only provenance tells (data file, protocol)
};

}  // namespace

bool IsHeadlineMetric(const std::string& metric) { return metric == "ppl" || metric == "acc"; }

ResultsTable PivotResults(const std::vector<ResultInput>& inputs) {
  ResultsTable table;
  std::vector<ColumnBuild> columns;
  std::map<std::string, size_t> column_index;  // by key
  std::map<RowKey, ResultsRow> rows;
  std::map<std::string, std::vector<LabelField>> calibration_of;  // by artifact key
  std::map<std::pair<std::string, size_t>, ResultsCell> cells;  // (row key, column) -> cell
  // A diverged job's row (non-finite, no provenance: common/diverged.h) goes into the column its
  // settings match once the results with provenance have made the columns, so it comes last.
  std::vector<const ResultInput*> by_placement;
  for (const ResultInput& in : inputs) by_placement.push_back(&in);
  std::stable_partition(by_placement.begin(), by_placement.end(),
                        [](const ResultInput* in) { return std::isfinite(in->value); });
  for (const ResultInput* input : by_placement) {
    const ResultInput& in = *input;
    auto spec = JobSpecFromJson(in.spec_json);
    if (!spec.ok()) {
      ++table.unreadable;
      continue;
    }
    if (!IsHeadlineMetric(in.metric)) continue;
    const bool ppl = in.metric == "ppl";
    const EvalConfig& eval = spec->eval;
    const EvalFacts facts = ReadEvalFacts(in.provenance_json, eval);
    std::vector<LabelField> settings = EvalFields(eval);
    if (IsTaskPath(eval.task)) settings.emplace_back("task", eval.task);
    if (!facts.data.empty()) settings.emplace_back("data", facts.data);
    if (!facts.protocol.empty()) settings.emplace_back("protocol", facts.protocol);
    std::string key = absl::StrCat(in.metric, "|", EvalKey(eval));
    std::string match = key;
    if (IsTaskPath(eval.task)) absl::StrAppend(&match, ";task=", eval.task);
    for (const auto& [name, value] : settings) absl::StrAppend(&key, ";", name, "=", value);
    if (!std::isfinite(in.value) && facts.data.empty() && facts.protocol.empty()) {
      for (const ColumnBuild& c : columns) {
        if (c.match == match) {
          key = c.column.key;
          break;
        }
      }
    }
    auto [ci, new_column] = column_index.try_emplace(key, columns.size());
    if (new_column) {
      ColumnBuild c;
      c.base = absl::StrCat(TaskColumnName(eval.task), ppl ? " ppl" : " acc");
      c.match = match;
      c.column.task = eval.task;
      c.column.metric = in.metric;
      c.column.lower_is_better = ppl;
      c.column.key = key;
      c.column.settings = std::move(settings);
      columns.push_back(std::move(c));
    }
    columns[ci->second].column.subset |= facts.subset;

    const QuantConfig& q = spec->quant;
    const bool fp = q.method == "fp";
    const std::string artifact = spec->ArtifactKey();
    RowKey row_key{spec->model, fp ? 0 : 1, q.method, q.wbits, q.abits, q.group_size, artifact};
    auto [it, inserted] = rows.try_emplace(row_key);
    ResultsRow& row = it->second;
    if (inserted) {
      row.model = spec->model;
      row.method = q.method;
      row.wbits = q.wbits;
      row.abits = q.abits;
      row.group = q.group_size;
      row.label = fp ? std::string("FP (baseline)") : DescribeQuant(q);
      row.baseline = fp;
      row.key = artifact;
      for (const auto& [name, value] : q.options) row.recipe.emplace_back(name, value);
      calibration_of[artifact] = CalibrationFields(*spec);
      for (const auto& field : calibration_of[artifact]) row.recipe.push_back(field);
    }
    ResultsCell& cell = cells[{artifact, ci->second}];
    if (in.job_id >= cell.job_id) cell = {in.value, in.stderr_value, in.n, in.job_id};
  }

  // Column names: the base, plus the settings that differ among columns of that base, plus the
  // limit of a subset (always shown, as lm-evaluation-harness shows its limit).
  std::vector<LabelParts> column_parts;
  for (const ColumnBuild& c : columns) {
    LabelParts parts{c.base, c.base, c.column.settings, {}};
    if (c.column.subset) {
      EvalConfig limit_of;
      limit_of.task = c.column.task;
      parts.always.push_back(LimitFieldName(limit_of));
    }
    column_parts.push_back(std::move(parts));
  }
  const std::vector<std::string> column_names = DistinctLabels(column_parts);
  for (size_t i = 0; i < columns.size(); ++i) {
    ResultsColumn& c = columns[i].column;
    c.name = column_names[i] + (c.subset ? " (subset)" : "");
    table.columns.push_back(c);
  }

  // Row labels: DescribeQuant plus the calibration settings that differ among the model's rows
  // of one series (the label without its bit-width), so a series is labelled alike at every width.
  std::vector<ResultsRow*> ordered;
  std::vector<LabelParts> row_parts;
  for (auto& [key, row] : rows) {
    const std::string series = row.baseline ? std::string("fp") : QuantSeries(row.label, row.wbits);
    row_parts.push_back(
        {absl::StrCat(row.model, "\n", series), row.label, calibration_of.at(row.key), {}});
    ordered.push_back(&row);
  }
  const std::vector<std::string> row_labels = DistinctLabels(row_parts);
  for (size_t i = 0; i < ordered.size(); ++i) {
    ResultsRow& row = *ordered[i];
    row.label = row_labels[i];
    // "gptq w4 g64 nsamples=4" -> "gptq g64 nsamples=4"; a W+A label "m w8a8" -> "m a8".
    row.series = row.baseline ? std::string("fp") : QuantSeries(row.label, row.wbits);
    for (size_t c = 0; c < columns.size(); ++c) {
      auto cell = cells.find({row.key, c});
      if (cell != cells.end()) row.cells[table.columns[c].name] = cell->second;
    }
  }
  table.rows.reserve(rows.size());
  for (auto& [key, row] : rows) table.rows.push_back(std::move(row));
  return table;
}

std::string ResultsTableToJson(const ResultsTable& table) {
  auto object = [](const std::vector<std::pair<std::string, std::string>>& fields) {
    json o = json::object();
    for (const auto& [name, value] : fields) o[name] = value;
    return o;
  };
  json columns = json::array();
  for (const auto& c : table.columns) {
    columns.push_back({{"name", c.name},
                       {"task", c.task},
                       {"metric", c.metric},
                       {"lower_is_better", c.lower_is_better},
                       {"key", c.key},
                       {"subset", c.subset},
                       {"settings", object(c.settings)}});
  }
  json rows = json::array();
  for (const auto& r : table.rows) {
    json cells = json::object();
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
                    {"key", r.key},
                    {"recipe", object(r.recipe)},
                    {"cells", std::move(cells)}});
  }
  return json{{"columns", std::move(columns)}, {"rows", std::move(rows)}}.dump();
}

std::string FormatResultValue(const ResultsColumn& column, double value) {
  return column.lower_is_better ? absl::StrFormat("%.3f", value) : absl::StrFormat("%.4f", value);
}

namespace {

constexpr char kSubsetNote[] =
    "(subset): computed on the first windows (perplexity) or examples (other tasks) only, as "
    "limited by the sweep; not comparable with results on the whole data.\n";

}  // namespace

std::string RenderResultsTable(const ResultsTable& table, ResultsFormat format) {
  if (table.rows.empty()) return "no results yet\n";
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> header = {"model", "quantization"};
  for (const auto& col : table.columns) header.push_back(col.name);
  lines.push_back(header);
  for (const auto& row : table.rows) {
    std::vector<std::string> line = {row.model, row.label};
    for (const auto& col : table.columns) {
      auto it = row.cells.find(col.name);
      line.push_back(it == row.cells.end() ? "-" : FormatResultValue(col, it->second.value));
    }
    lines.push_back(line);
  }
  std::string text;
  if (format == ResultsFormat::kCsv) {
    for (const auto& l : lines) {
      for (size_t i = 0; i < l.size(); ++i) absl::StrAppend(&text, i ? "," : "", l[i]);
      text += "\n";
    }
    return text;
  }
  const bool markdown = format == ResultsFormat::kMarkdown;
  std::vector<size_t> w(header.size(), 0);
  for (const auto& l : lines) {
    for (size_t i = 0; i < l.size(); ++i) w[i] = std::max(w[i], l[i].size());
  }
  for (size_t r = 0; r < lines.size(); ++r) {
    std::string out = markdown ? "| " : "";
    for (size_t i = 0; i < lines[r].size(); ++i) {
      out += absl::StrFormat("%-*s", static_cast<int>(w[i]), lines[r][i]);
      out += markdown ? " | " : "  ";
    }
    absl::StrAppend(&text, out, "\n");
    if (r == 0) {
      std::string rule = markdown ? "|" : "";
      for (size_t i = 0; i < w.size(); ++i) {
        rule += std::string(w[i] + (markdown ? 2 : 0), '-');
        rule += markdown ? "|" : "  ";
      }
      absl::StrAppend(&text, rule, "\n");
    }
  }
  // Subset columns are named so in every format; the text formats also say what that means.
  if (std::any_of(table.columns.begin(), table.columns.end(),
                  [](const ResultsColumn& c) { return c.subset; })) {
    absl::StrAppend(&text, "\n", kSubsetNote);
  }
  return text;
}

}  // namespace bitsweep
