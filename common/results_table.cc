#include "common/results_table.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/catalog.h"
#include "common/job_spec.h"
#include "common/labels.h"
#include "common/mixed_precision.h"

namespace bitsweep {
namespace {

using nlohmann::json;

// Bits descending within a method: the negated widths sort first when largest.
struct RowKey {
  std::string model;
  std::string run_tag;  // a tagged run is a group of its own, with its own baseline
  int baseline_last;  // 0 for the baseline: sorts first
  std::string method;
  int neg_wbits, neg_abits, group;
  std::string artifact_key;
  bool operator<(const RowKey& o) const {
    return std::tie(model, run_tag, baseline_last, method, neg_wbits, neg_abits, group,
                    artifact_key) < std::tie(o.model, o.run_tag, o.baseline_last, o.method,
                                             o.neg_wbits, o.neg_abits, o.group, o.artifact_key);
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

bool SameModelGroup(const ResultsRow& a, const ResultsRow& b) {
  return a.model == b.model && a.run_tag == b.run_tag;
}

std::string ModelColumnText(const ResultsRow& row) {
  return row.run_tag.empty() ? row.model_name : absl::StrCat(row.model_name, " run=", row.run_tag);
}

std::string ModelDisplayName(const std::string& model_path) {
  std::filesystem::path p = std::filesystem::path(model_path).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "/models/Qwen3-8B/"
  const std::filesystem::path parent = p.parent_path();
  // The Hugging Face cache: <cache>/models--<org>--<name>/snapshots/<revision>.
  if (parent.filename() == "snapshots") {
    const std::string repo = parent.parent_path().filename().string();
    const size_t sep = repo.rfind("--");
    if (repo.rfind("models--", 0) == 0 && sep != std::string::npos && sep + 2 < repo.size()) {
      return repo.substr(sep + 2);
    }
  }
  const std::string name = p.filename().string();
  return name.empty() ? model_path : name;
}

ResultsTable PivotResults(const std::vector<ResultInput>& inputs,
                          const std::map<std::string, std::string>& model_names) {
  ResultsTable table;
  std::vector<ColumnBuild> columns;
  std::map<std::string, size_t> column_index;  // by key
  std::map<RowKey, ResultsRow> rows;
  std::map<std::string, std::vector<LabelField>> calibration_of;  // by artifact key
  std::map<std::pair<std::string, size_t>, ResultsCell> cells;    // (row key, column) -> cell
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
      // Accuracy tasks report a standard error (0 when every example agrees); perplexity has one
      // only where a result stored it.
      c.column.has_stderr = !ppl;
      c.column.key = key;
      c.column.settings = std::move(settings);
      columns.push_back(std::move(c));
    }
    columns[ci->second].column.subset |= facts.subset;

    const QuantConfig& q = spec->quant;
    const bool fp = q.method == "fp";
    const std::string artifact = spec->ArtifactKey();
    RowKey row_key{spec->model, spec->run_tag, fp ? 0 : 1, q.method, -q.wbits,
                   -(q.abits == 0 ? 16 : q.abits), q.group_size, artifact};
    auto [it, inserted] = rows.try_emplace(row_key);
    ResultsRow& row = it->second;
    if (inserted) {
      row.model = spec->model;
      row.run_tag = spec->run_tag;
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
      row.overrides = OverridesText(q.overrides);
      row.sensitivity_unit = SensitivityUnit(q);
    }
    if (!row.overrides.empty() && row.avg_wbits == 0 && !in.provenance_json.empty()) {
      const json prov = json::parse(in.provenance_json, nullptr, false);
      if (prov.is_object() && prov.contains("avg_wbits") && prov["avg_wbits"].is_number()) {
        row.avg_wbits = prov["avg_wbits"].get<double>();
      }
    }
    ResultsCell& cell = cells[{artifact, ci->second}];
    if (in.job_id >= cell.job_id) {
      cell = ResultsCell{};
      cell.value = in.value;
      cell.stderr_value = in.stderr_value;
      cell.n = in.n;
      cell.job_id = in.job_id;
      cell.skipped = in.skipped_reason;
      cell.failed = in.failed_reason;
    }
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
        {absl::StrCat(row.model, "\n", row.run_tag, "\n", series), row.label,
         calibration_of.at(row.key), {}});
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

  // Model names: the sweep's name or the short one, unless two different folders share it.
  auto name_of = [&model_names](const std::string& model) {
    auto named = model_names.find(model);
    return named != model_names.end() ? named->second : ModelDisplayName(model);
  };
  std::map<std::string, std::set<std::string>> folders_named;
  for (const ResultsRow& row : table.rows) folders_named[name_of(row.model)].insert(row.model);
  for (ResultsRow& row : table.rows) {
    const std::string name = name_of(row.model);
    row.model_name = folders_named[name].size() == 1 ? name : row.model;
  }

  // Deltas to the model's baseline in the same column; the baseline row comes first.
  const ResultsRow* baseline = nullptr;
  for (ResultsRow& row : table.rows) {
    if (row.baseline) baseline = &row;
    if (baseline != nullptr && !SameModelGroup(*baseline, row)) baseline = nullptr;
    for (ResultsColumn& c : table.columns) {
      auto cell = row.cells.find(c.name);
      if (cell == row.cells.end()) continue;
      if (cell->second.stderr_value > 0 && std::isfinite(cell->second.stderr_value)) {
        c.has_stderr = true;
      }
      if (row.baseline || baseline == nullptr) continue;
      auto base = baseline->cells.find(c.name);
      if (base == baseline->cells.end() || !std::isfinite(base->second.value) ||
          !std::isfinite(cell->second.value)) {
        continue;
      }
      cell->second.has_delta = true;
      cell->second.delta = cell->second.value - base->second.value;
      c.has_delta = true;
    }
  }
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
                       {"has_stderr", c.has_stderr},
                       {"has_delta", c.has_delta},
                       {"settings", object(c.settings)}});
  }
  json rows = json::array();
  for (const auto& r : table.rows) {
    json cells = json::object();
    for (const auto& [name, cell] : r.cells) {
      cells[name] = {{"value", cell.value},
                     {"stderr", cell.stderr_value},
                     {"n", cell.n},
                     {"job_id", cell.job_id},
                     {"delta", cell.has_delta ? json(cell.delta) : json(nullptr)}};
      if (!cell.skipped.empty()) cells[name]["skipped"] = cell.skipped;
      if (!cell.failed.empty()) cells[name]["failed"] = cell.failed;
    }
    rows.push_back({{"model", r.model},
                    {"model_name", r.model_name},
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
    if (!r.overrides.empty()) {  // uniform rows' JSON is as it always was
      rows.back()["overrides"] = r.overrides;
      rows.back()["avg_wbits"] = r.avg_wbits > 0 ? json(r.avg_wbits) : json(nullptr);
      rows.back()["sensitivity_unit"] = r.sensitivity_unit;
    }
    if (!r.run_tag.empty()) rows.back()["run_tag"] = r.run_tag;  // absent: untagged
  }
  return json{{"columns", std::move(columns)}, {"rows", std::move(rows)}}.dump();
}

std::string FormatResultValue(const ResultsColumn& column, double value, bool percent) {
  if (column.lower_is_better) return absl::StrFormat("%.3f", value);
  return percent ? absl::StrFormat("%.2f", 100 * value) : absl::StrFormat("%.4f", value);
}

std::string FormatResultDelta(const ResultsColumn& column, double delta, bool percent) {
  std::string text = column.lower_is_better ? absl::StrFormat("%+.3f", delta)
                     : percent              ? absl::StrFormat("%+.2f", 100 * delta)
                                            : absl::StrFormat("%+.4f", delta);
  // A difference that rounds to zero has no sign.
  if (text.find_first_not_of("+-0.") == std::string::npos) text[0] = '+';
  return text;
}

namespace {

constexpr char kSubsetNote[] =
    "(subset): computed on the first windows (perplexity) or examples (other tasks) only, as "
    "limited by the sweep; not comparable with results on the whole data.\n";

// One printed column: its header, whether it holds numbers (right-aligned), and each row's text.
struct OutColumn {
  std::string header;
  bool number = false;
  std::vector<std::string> cells;
};

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  return absl::StrCat("\"", absl::StrReplaceAll(field, {{"\"", "\"\""}}), "\"");
}

std::string LatexEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\textbackslash{}";
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += '\\';
        out += c;
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string GroupText(const ResultsRow& row) {
  if (row.baseline) return "";
  return row.group == -1 ? "channel" : absl::StrCat(row.group);
}

std::vector<OutColumn> OutColumns(const ResultsTable& table, ResultsFormat format,
                                  const ResultsRenderOptions& options) {
  const bool csv = format == ResultsFormat::kCsv;
  const bool latex = format == ResultsFormat::kLatex;
  const std::string missing = csv ? "" : latex ? "--" : "-";
  std::vector<OutColumn> out;
  auto text_column = [&](const std::string& header, bool number, auto cell_of) {
    OutColumn c{header, number, {}};
    for (const ResultsRow& row : table.rows) c.cells.push_back(cell_of(row));
    out.push_back(std::move(c));
  };
  text_column("model", false, [](const ResultsRow& r) { return ModelColumnText(r); });
  if (csv) {
    text_column("method", false, [](const ResultsRow& r) { return r.method; });
    text_column("wbits", true, [](const ResultsRow& r) { return absl::StrCat(r.wbits); });
    text_column("abits", true,
                [](const ResultsRow& r) { return absl::StrCat(r.abits == 0 ? 16 : r.abits); });
    text_column("group", true, GroupText);
  }
  text_column("quantization", false, [](const ResultsRow& r) { return r.label; });
  // A mixed recipe's label lists its overrides, not what they add up to: with any mixed row, a
  // column gives every row's average weight bits (a uniform recipe's are its wbits, FP's 16).
  // Without one the table is as it always was.
  if (std::any_of(table.rows.begin(), table.rows.end(),
                  [](const ResultsRow& r) { return !r.overrides.empty(); })) {
    text_column(csv ? "avg_wbits" : "avg wbits", true, [&](const ResultsRow& r) {
      if (r.baseline) return absl::StrFormat("%.2f", 16.0);
      if (r.overrides.empty()) return absl::StrFormat("%.2f", static_cast<double>(r.wbits));
      return r.avg_wbits > 0 ? absl::StrFormat("%.2f", r.avg_wbits) : missing;
    });
  }
  for (const ResultsColumn& col : table.columns) {
    const bool pct = options.percent && !col.lower_is_better;
    const std::string header = col.name + (pct ? " (%)" : "");
    auto cell = [&](const ResultsRow& r) -> const ResultsCell* {
      auto it = r.cells.find(col.name);
      return it == r.cells.end() ? nullptr : &it->second;
    };
    text_column(header, true, [&](const ResultsRow& r) {
      const ResultsCell* c = cell(r);
      if (c == nullptr) return missing;
      if (!c->skipped.empty()) return std::string("skipped");
      if (!c->failed.empty()) return std::string("failed");
      std::string text = FormatResultValue(col, c->value, pct);
      if (latex && col.has_stderr) {
        absl::StrAppend(&text, "$_{\\pm ", FormatResultValue(col, c->stderr_value, pct), "}$");
      }
      return text;
    });
    if (latex) continue;
    if (col.has_stderr) {
      text_column(csv ? col.name + " stderr" : "stderr", true, [&](const ResultsRow& r) {
        const ResultsCell* c = cell(r);
        if (c == nullptr || !c->skipped.empty() || !c->failed.empty()) return missing;
        return FormatResultValue(col, c->stderr_value, pct);
      });
    }
    if (col.has_delta) {
      text_column(csv ? col.name + " vs FP" : "vs FP", true, [&](const ResultsRow& r) {
        const ResultsCell* c = cell(r);
        return c == nullptr || !c->has_delta ? missing : FormatResultDelta(col, c->delta, pct);
      });
    }
  }
  return out;
}

std::string RenderCsv(const std::vector<OutColumn>& columns, size_t rows) {
  std::string text;
  for (size_t r = 0; r <= rows; ++r) {
    for (size_t i = 0; i < columns.size(); ++i) {
      const OutColumn& c = columns[i];
      absl::StrAppend(&text, i ? "," : "", CsvField(r == 0 ? c.header : c.cells[r - 1]));
    }
    text += "\n";
  }
  return text;
}

std::string RenderLatex(const ResultsTable& table, const std::vector<OutColumn>& columns) {
  std::string spec;
  for (const OutColumn& c : columns) spec += c.number ? "r" : "l";
  std::string text = absl::StrCat("\\begin{tabular}{", spec, "}\n\\toprule\n");
  auto line = [&](auto cell_of) {
    std::string out;
    for (size_t i = 0; i < columns.size(); ++i) absl::StrAppend(&out, i ? " & " : "", cell_of(i));
    absl::StrAppend(&text, out, " \\\\\n");
  };
  line([&](size_t i) { return LatexEscape(columns[i].header); });
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const bool first_of_model = r == 0 || !SameModelGroup(table.rows[r - 1], table.rows[r]);
    if (first_of_model) text += "\\midrule\n";
    line([&](size_t i) {
      if (i == 0) return first_of_model ? LatexEscape(columns[0].cells[r]) : std::string();
      // Values carry their own math ("$_{\pm 0.45}$"); only the minus of a delta needs none.
      return columns[i].number ? columns[i].cells[r] : LatexEscape(columns[i].cells[r]);
    });
  }
  text += "\\bottomrule\n\\end{tabular}\n";
  return text;
}

std::string RenderPadded(const std::vector<OutColumn>& columns, size_t rows, bool markdown) {
  std::vector<size_t> w;
  for (const OutColumn& c : columns) {
    size_t width = c.header.size();
    for (const std::string& cell : c.cells) width = std::max(width, cell.size());
    w.push_back(width);
  }
  std::string text;
  auto pad = [](const std::string& s, size_t width, bool right) {
    const std::string fill(width - std::min(width, s.size()), ' ');
    return right ? fill + s : s + fill;
  };
  for (size_t r = 0; r <= rows; ++r) {
    std::string out = markdown ? "|" : "";
    for (size_t i = 0; i < columns.size(); ++i) {
      const std::string& cell = r == 0 ? columns[i].header : columns[i].cells[r - 1];
      const std::string padded = pad(cell, w[i], columns[i].number);
      if (markdown) {
        absl::StrAppend(&out, " ", padded, " |");
      } else {
        absl::StrAppend(&out, i ? "  " : "", padded);
      }
    }
    if (!markdown) out.erase(out.find_last_not_of(' ') + 1);
    absl::StrAppend(&text, out, "\n");
    if (r == 0) {
      std::string rule = markdown ? "|" : "";
      for (size_t i = 0; i < w.size(); ++i) {
        if (markdown) {
          const bool right = columns[i].number;
          absl::StrAppend(&rule, std::string(w[i] + (right ? 1 : 2), '-'), right ? ":" : "", "|");
        } else {
          absl::StrAppend(&rule, i ? "  " : "", std::string(w[i], '-'));
        }
      }
      absl::StrAppend(&text, rule, "\n");
    }
  }
  return text;
}

}  // namespace

std::string RenderResultsTable(const ResultsTable& table, ResultsFormat format,
                               const ResultsRenderOptions& options) {
  if (table.rows.empty()) return "no results yet\n";
  const std::vector<OutColumn> columns = OutColumns(table, format, options);
  if (format == ResultsFormat::kCsv) return RenderCsv(columns, table.rows.size());
  std::string text =
      format == ResultsFormat::kLatex
          ? RenderLatex(table, columns)
          : RenderPadded(columns, table.rows.size(), format == ResultsFormat::kMarkdown);
  // Subset columns are named so in every format; the text formats also say what that means.
  if (std::any_of(table.columns.begin(), table.columns.end(),
                  [](const ResultsColumn& c) { return c.subset; })) {
    if (format == ResultsFormat::kLatex) {
      absl::StrAppend(&text, "% ", kSubsetNote);
    } else {
      absl::StrAppend(&text, "\n", kSubsetNote);
    }
  }
  // Skipped cells say why (the early_abort rule and its numbers), once per row and reason.
  if (format == ResultsFormat::kText || format == ResultsFormat::kMarkdown) {
    std::string notes;
    for (const ResultsRow& row : table.rows) {
      std::set<std::string> reasons;
      for (const auto& [name, cell] : row.cells) {
        if (!cell.skipped.empty() && reasons.insert(cell.skipped).second) {
          absl::StrAppend(&notes, "skipped: ", ModelColumnText(row), " ", row.label, ": ",
                          cell.skipped, "\n");
        }
      }
    }
    if (!notes.empty()) absl::StrAppend(&text, "\n", notes);
  }
  return text;
}

ResultInput SkippedResultInput(int64_t job_id, const std::string& spec_json,
                               const std::string& reason) {
  ResultInput in;
  in.job_id = job_id;
  in.spec_json = spec_json;
  in.value = std::numeric_limits<double>::quiet_NaN();
  in.skipped_reason = reason;
  auto spec = JobSpecFromJson(spec_json);
  bool ppl = false;
  if (spec.ok()) {
    auto task = LookupTask(spec->eval.task);
    ppl = task.ok() && (*task)->kind == TaskKind::kPerplexity;
  }
  in.metric = ppl ? "ppl" : "acc";
  return in;
}

ResultInput FailedResultInput(int64_t job_id, const std::string& spec_json,
                              const std::string& error) {
  ResultInput in = SkippedResultInput(job_id, spec_json, "");
  in.failed_reason = error;
  return in;
}

}  // namespace bitsweep
