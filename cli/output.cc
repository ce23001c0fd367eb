#include "cli/output.h"

#include <cstdio>
#include <fstream>
#include <iostream>
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

std::string ResultRowsJson(const v1::QueryResultsResponse& results) {
  json rows = json::array();
  for (const auto& r : results.rows()) {
    rows.push_back({{"job_id", r.job_id()},
                    {"job_key", r.job_key()},
                    {"spec", json::parse(r.spec_json(), nullptr, false)},
                    {"metric", r.metric().name()},
                    {"value", r.metric().value()},
                    {"stderr", r.metric().stderr()},
                    {"n", r.metric().n()},
                    {"provenance", json::parse(r.provenance_json(), nullptr, false)}});
  }
  return rows.dump(2) + "\n";
}

ResultsTable Pivot(const v1::QueryResultsResponse& results) {
  std::vector<ResultInput> inputs;
  inputs.reserve(results.rows_size());
  for (const auto& r : results.rows()) {
    inputs.push_back({r.job_id(), r.spec_json(), r.metric().name(), r.metric().value(),
                      r.metric().stderr(), r.metric().n(), r.provenance_json()});
  }
  return PivotResults(inputs);
}

}  // namespace

int Fail(const Status& status) {
  std::cerr << "bitsweep: error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

std::string SweepLine(const v1::Sweep& s) {
  const int64_t done = s.succeeded() + s.failed() + s.canceled();
  const int filled = s.total() > 0 ? static_cast<int>(kProgressBarWidth * done / s.total()) : 0;
  return absl::StrFormat(
      "sweep %d %-12s [%s%s] %d/%d  succeeded %d  failed %d  canceled %d  running %d  pending %d",
      s.id(), s.name(), std::string(filled, '#'), std::string(kProgressBarWidth - filled, '.'),
      done, s.total(), s.succeeded(), s.failed(), s.canceled(), s.leased(), s.pending());
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
  std::vector<std::string> lines;
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    lines.push_back(absl::StrFormat("job %-5d %-18s attempt %d/%d  %-28s %-12s %s%s", j.id(),
                                    std::string(rpc::JobStateDisplayName(j.state())), j.attempt(),
                                    j.max_attempts(), readable[i] ? labels[i].quant : "?",
                                    readable[i] ? labels[i].eval : "?", j.phase(),
                                    j.error().empty() ? "" : "  error: " + j.error()));
  }
  return lines;
}

std::string RenderResults(const v1::QueryResultsResponse& results, const std::string& format,
                          int64_t sweep_id) {
  if (format == "json") return ResultRowsJson(results);
  const ResultsTable table = Pivot(results);
  if (format == "html") {
    const std::string title =
        sweep_id > 0 ? absl::StrCat("bitsweep results: sweep ", sweep_id) : "bitsweep results";
    return dashboard::RenderReport(title, ResultsTableToJson(table));
  }
  return RenderResultsTable(table, format == "csv"        ? ResultsFormat::kCsv
                                   : format == "markdown" ? ResultsFormat::kMarkdown
                                                          : ResultsFormat::kText);
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
