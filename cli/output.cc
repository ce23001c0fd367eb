#include "cli/output.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_spec.h"
#include "common/labels.h"
#include "common/results_table.h"
#include "dashboard/assets.h"
#include "rpc/proto_convert.h"

namespace bitsweep::cli {
namespace {

using nlohmann::json;

constexpr int kProgressBarWidth = 30;

// One row per metric, each with its job's spec and provenance (the format `--format json` has
// always printed), and "model_name" where the sweep named the model.
std::string ResultRowsJson(const v1::QueryResultsResponse& results) {
  json rows = json::array();
  for (const v1::JobResults& job : results.jobs()) {
    const json spec = json::parse(job.spec_json(), nullptr, false);
    const bool has_model = spec.is_object() && spec.contains("model") && spec["model"].is_string();
    const std::string model = has_model ? spec["model"].get<std::string>() : "";
    const auto name = results.model_names().find(model);
    const json provenance = json::parse(job.provenance_json(), nullptr, false);
    for (const v1::Metric& m : job.metrics()) {
      rows.push_back({{"job_id", job.job_id()},
                      {"job_key", job.job_key()},
                      {"spec", spec},
                      {"metric", m.name()},
                      {"value", m.value()},
                      {"stderr", m.stderr()},
                      {"n", m.n()},
                      {"provenance", provenance}});
      if (name != results.model_names().end()) rows.back()["model_name"] = name->second;
    }
    if (!job.skipped_reason().empty()) {  // skipped by the sweep's early_abort rule
      rows.push_back({{"job_id", job.job_id()},
                      {"job_key", job.job_key()},
                      {"spec", spec},
                      {"skipped", job.skipped_reason()}});
      if (name != results.model_names().end()) rows.back()["model_name"] = name->second;
    }
  }
  return rows.dump(2) + "\n";
}

ResultsTable Pivot(const v1::QueryResultsResponse& results) {
  std::vector<ResultInput> inputs;
  for (const v1::JobResults& job : results.jobs()) {
    if (!job.skipped_reason().empty()) {  // skipped by the sweep's early_abort rule
      inputs.push_back(SkippedResultInput(job.job_id(), job.spec_json(), job.skipped_reason()));
    }
    for (const v1::Metric& m : job.metrics()) {
      if (!IsHeadlineMetric(m.name())) continue;  // the only rows the pivot reads
      inputs.push_back({job.job_id(), job.spec_json(), m.name(), m.value(), m.stderr(), m.n(),
                        job.provenance_json()});
    }
  }
  return PivotResults(inputs, std::map<std::string, std::string>(results.model_names().begin(),
                                                                 results.model_names().end()));
}

}  // namespace

int Fail(const Status& status) {
  std::cerr << "bitsweep: error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ||
                 status.code() == absl::StatusCode::kResourceExhausted
             ? kExitUsage
             : kExitError;
}

std::string SweepLine(const v1::Sweep& s, int name_width) {
  const int64_t done = s.succeeded() + s.failed() + s.canceled() + s.skipped();
  const int filled = s.total() > 0 ? static_cast<int>(kProgressBarWidth * done / s.total()) : 0;
  std::string line = absl::StrFormat(
      "sweep %d %-*s [%s%s] %d/%d  succeeded %d  failed %d  canceled %d  running %d  pending %d",
      s.id(), name_width, s.name(), std::string(filled, '#'),
      std::string(kProgressBarWidth - filled, '.'), done, s.total(), s.succeeded(), s.failed(),
      s.canceled(), s.leased(), s.pending());
  // Early abort (the sweep's early_abort rule): what it skipped and the time that saved.
  if (s.skipped() > 0) {
    absl::StrAppend(&line, "  skipped ", s.skipped(), " (saved ~",
                    ShortDuration(s.saved_worker_seconds()), " of worker time)");
  }
  return line;
}

std::vector<std::string> SweepLines(const v1::ListSweepsResponse& sweeps) {
  int id_width = 1, name_width = 12;
  for (const v1::Sweep& s : sweeps.sweeps()) {
    id_width = std::max(id_width, static_cast<int>(std::to_string(s.id()).size()));
    name_width = std::max(name_width, static_cast<int>(s.name().size()));
  }
  std::vector<std::string> lines;
  for (const v1::Sweep& s : sweeps.sweeps()) {
    std::string line = SweepLine(s, name_width);
    // "sweep 7 " padded to the widest id, so the names start in one column.
    line.insert(6, id_width - std::to_string(s.id()).size(), ' ');
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string SubmitLine(const v1::SubmitSweepResponse& r) {
  std::string line = absl::StrFormat("sweep %d \"%s\": %d jobs", r.sweep().id(), r.sweep().name(),
                                     r.sweep().total());
  if (r.replayed()) return line + " (already submitted)";
  absl::StrAppend(&line, ": ", r.new_jobs(), " new, ", r.reused_jobs(),
                  " reused from stored results");
  if (r.rerun_jobs() > 0) absl::StrAppend(&line, ", ", r.rerun_jobs(), " run again");
  if (r.shared_jobs() > 0) {
    absl::StrAppend(&line, ", ", r.shared_jobs(), " shared with another sweep");
  }
  absl::StrAppend(&line, ", ", r.skipped_size(), " skipped");
  return line;
}

std::string ShortDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

std::string SweepTiming(const v1::Sweep& s, int64_t now_unix_seconds) {
  if (s.finished() || s.created_at() <= 0) return "";
  const double elapsed = std::max<int64_t>(0, now_unix_seconds - s.created_at());
  const int64_t done = s.succeeded() + s.failed() + s.canceled() + s.skipped();
  const std::string eta =
      done > 0 ? ShortDuration(elapsed * (s.total() - done) / static_cast<double>(done)) : "?";
  return absl::StrCat("  elapsed ", ShortDuration(elapsed), "  eta ", eta);
}

// "  40%  elapsed 12s  eta 18s" for a running job, "" otherwise.
static std::string JobTiming(const v1::Job& j) {
  if (j.elapsed_seconds() <= 0) return "";
  std::string out = absl::StrFormat("  %.0f%%  elapsed %s", 100 * j.progress(),
                                    ShortDuration(j.elapsed_seconds()));
  if (j.eta_seconds() > 0) absl::StrAppend(&out, "  eta ", ShortDuration(j.eta_seconds()));
  return out;
}

std::vector<std::string> JobLines(const v1::ListJobsResponse& jobs) {
  std::vector<JobSpec> specs;
  std::vector<bool> readable;
  for (const auto& j : jobs.jobs()) {
    auto spec = JobSpecFromJson(j.spec_json());
    readable.push_back(spec.ok());
    specs.push_back(spec.ok() ? *spec : JobSpec{});
  }
  const std::vector<JobLabel> labels = LabelJobs(specs);
  // Each column as wide as its longest entry (at least the usual width), so long labels shift
  // whole columns instead of the lines after them.
  int id_width = 5, state_width = 18, quant_width = 28, eval_width = 12;
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    id_width = std::max(id_width, static_cast<int>(std::to_string(j.id()).size()));
    state_width = std::max(
        state_width, static_cast<int>(std::string(rpc::JobStateDisplayName(j.state())).size()));
    if (!readable[i]) continue;
    quant_width = std::max(quant_width, static_cast<int>(labels[i].quant.size()));
    eval_width = std::max(eval_width, static_cast<int>(labels[i].eval.size()));
  }
  std::vector<std::string> lines;
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    std::string line =
        absl::StrFormat("job %-*d %-*s attempt %d/%d  %-*s %-*s %s%s%s", id_width, j.id(),
                        state_width, std::string(rpc::JobStateDisplayName(j.state())), j.attempt(),
                        j.max_attempts(), quant_width, readable[i] ? labels[i].quant : "?",
                        eval_width, readable[i] ? labels[i].eval : "?", j.phase(), JobTiming(j),
                        j.error().empty() ? "" : "  error: " + j.error());
    while (!line.empty() && line.back() == ' ') line.pop_back();  // no padding after the last
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string RenderResults(const v1::QueryResultsResponse& results, const std::string& format,
                          int64_t sweep_id, bool percent) {
  if (format == "json") return ResultRowsJson(results);
  const ResultsTable table = Pivot(results);
  if (format == "html") {
    const std::string title =
        sweep_id > 0 ? absl::StrCat("bitsweep results: sweep ", sweep_id) : "bitsweep results";
    return dashboard::RenderReport(title, ResultsTableToJson(table));
  }
  ResultsRenderOptions options;
  options.percent = percent;
  return RenderResultsTable(table,
                            format == "csv"        ? ResultsFormat::kCsv
                            : format == "markdown" ? ResultsFormat::kMarkdown
                            : format == "latex"    ? ResultsFormat::kLatex
                                                   : ResultsFormat::kText,
                            options);
}

Status WriteOutput(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text;
    return absl::OkStatus();
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("--output: cannot write '", path, "'"));
  std::fprintf(stderr, "bitsweep: wrote %s\n", path.c_str());
  return absl::OkStatus();
}

}  // namespace bitsweep::cli
