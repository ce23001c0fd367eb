#include "cli/output.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <utility>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
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

}  // namespace

ResultsTable PivotQueryResults(const v1::QueryResultsResponse& results,
                               const std::vector<ResultInput>& extra) {
  std::vector<ResultInput> inputs = extra;
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

int Fail(const Status& status) {
  std::cerr << "bitsweep: error: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ||
                 status.code() == absl::StatusCode::kResourceExhausted
             ? kExitUsage
             : kExitError;
}

std::string SweepName(const v1::Sweep& s) {
  return s.run_tag().empty() ? s.name() : absl::StrCat(s.name(), " run=", s.run_tag());
}

std::string SweepLine(const v1::Sweep& s, int name_width) {
  const int64_t done = s.succeeded() + s.failed() + s.canceled() + s.skipped();
  const int filled = s.total() > 0 ? static_cast<int>(kProgressBarWidth * done / s.total()) : 0;
  std::string line = absl::StrFormat(
      "sweep %d %-*s [%s%s] %d/%d  succeeded %d  failed %d  canceled %d  running %d  pending %d",
      s.id(), name_width, SweepName(s), std::string(filled, '#'),
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
    name_width = std::max(name_width, static_cast<int>(SweepName(s).size()));
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
  std::string line = absl::StrFormat("sweep %d \"%s\": %d jobs", r.sweep().id(),
                                     SweepName(r.sweep()), r.sweep().total());
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

namespace {

// Each job's labels (LabelJobs over the list, so equal short labels name what differs); nullopt
// for a spec that does not parse.
std::vector<std::optional<JobLabel>> JobLabels(const v1::ListJobsResponse& jobs) {
  std::vector<JobSpec> specs;
  std::vector<bool> readable;
  for (const auto& j : jobs.jobs()) {
    auto spec = JobSpecFromJson(j.spec_json());
    readable.push_back(spec.ok());
    specs.push_back(spec.ok() ? *spec : JobSpec{});
  }
  const std::vector<JobLabel> labels = LabelJobs(specs);
  std::vector<std::optional<JobLabel>> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    out.push_back(readable[i] ? std::optional<JobLabel>(labels[i]) : std::nullopt);
  }
  return out;
}

}  // namespace

std::vector<std::string> JobLines(const v1::ListJobsResponse& jobs) {
  const std::vector<std::optional<JobLabel>> labels = JobLabels(jobs);
  // Each column as wide as its longest entry (at least the usual width), so long labels shift
  // whole columns instead of the lines after them.
  int id_width = 5, state_width = 18, quant_width = 28, eval_width = 12;
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    id_width = std::max(id_width, static_cast<int>(std::to_string(j.id()).size()));
    state_width = std::max(
        state_width, static_cast<int>(std::string(rpc::JobStateDisplayName(j.state())).size()));
    if (!labels[i]) continue;
    quant_width = std::max(quant_width, static_cast<int>(labels[i]->quant.size()));
    eval_width = std::max(eval_width, static_cast<int>(labels[i]->eval.size()));
  }
  std::vector<std::string> lines;
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    std::string line =
        absl::StrFormat("job %-*d %-*s attempt %d/%d  %-*s %-*s %s%s%s", id_width, j.id(),
                        state_width, std::string(rpc::JobStateDisplayName(j.state())), j.attempt(),
                        j.max_attempts(), quant_width, labels[i] ? labels[i]->quant : "?",
                        eval_width, labels[i] ? labels[i]->eval : "?", j.phase(), JobTiming(j),
                        j.error().empty() ? "" : "  error: " + j.error());
    while (!line.empty() && line.back() == ' ') line.pop_back();  // no padding after the last
    lines.push_back(std::move(line));
  }
  return lines;
}

namespace {

// Rows of cells as lines: each column as wide as its longest cell ("" reads "-"), two spaces
// between columns, nothing after the last.
std::vector<std::string> AlignColumns(std::vector<std::vector<std::string>> rows) {
  std::vector<size_t> width;
  for (auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (row[c].empty()) row[c] = "-";
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  }
  std::vector<std::string> lines;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size(), ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

bool Running(v1::JobState state) {
  return state == v1::JOB_STATE_LEASED || state == v1::JOB_STATE_CANCEL_REQUESTED;
}

json UnixOrNull(int64_t t) { return t > 0 ? json(t) : json(nullptr); }

// A sweep's elapsed time and estimate as SweepTiming computes them; -1 when none.
std::pair<double, double> SweepElapsedEta(const v1::Sweep& s, int64_t now) {
  if (s.finished() || s.created_at() <= 0) return {-1, -1};
  const double elapsed = std::max<int64_t>(0, now - s.created_at());
  const int64_t done = s.succeeded() + s.failed() + s.canceled() + s.skipped();
  return {elapsed, done > 0 ? elapsed * (s.total() - done) / static_cast<double>(done) : -1};
}

std::string DurationOrDash(double seconds) { return seconds < 0 ? "-" : ShortDuration(seconds); }

}  // namespace

double JobElapsedSeconds(const v1::Job& j, int64_t now) {
  if (Running(j.state())) {
    if (j.elapsed_seconds() > 0) return j.elapsed_seconds();
    return j.leased_at() > 0 ? static_cast<double>(std::max<int64_t>(0, now - j.leased_at())) : -1;
  }
  if (j.finished_at() > 0 && j.leased_at() > 0 && j.finished_at() >= j.leased_at()) {
    return static_cast<double>(j.finished_at() - j.leased_at());
  }
  return -1;
}

std::string UnixTime(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

std::string SweepsJson(const v1::ListSweepsResponse& sweeps, int64_t now) {
  json out = json::array();
  for (const v1::Sweep& s : sweeps.sweeps()) {
    const auto [elapsed, eta] = SweepElapsedEta(s, now);
    out.push_back({{"id", s.id()},
                   {"name", s.name()},
                   {"run_tag", s.run_tag()},
                   {"priority", s.priority()},
                   {"created_at", UnixOrNull(s.created_at())},
                   {"total", s.total()},
                   {"pending", s.pending()},
                   {"running", s.leased()},
                   {"succeeded", s.succeeded()},
                   {"failed", s.failed()},
                   {"canceled", s.canceled()},
                   {"skipped", s.skipped()},
                   {"saved_worker_seconds", s.saved_worker_seconds()},
                   {"finished", s.finished()},
                   {"elapsed_seconds", elapsed < 0 ? json(nullptr) : json(elapsed)},
                   {"eta_seconds", eta < 0 ? json(nullptr) : json(eta)}});
  }
  return out.dump(2) + "\n";
}

std::string JobsJson(const v1::ListJobsResponse& jobs, int64_t now) {
  const std::vector<std::optional<JobLabel>> labels = JobLabels(jobs);
  json out = json::array();
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    const double elapsed = JobElapsedSeconds(j, now);
    out.push_back({{"id", j.id()},
                   {"job_key", j.job_key()},
                   {"state", std::string(rpc::JobStateDisplayName(j.state()))},
                   {"attempt", j.attempt()},
                   {"max_attempts", j.max_attempts()},
                   {"priority", j.priority()},
                   {"worker", j.worker()},
                   {"error", j.error()},
                   {"progress", j.progress()},
                   {"phase", j.phase()},
                   {"quant", labels[i] ? json(labels[i]->quant) : json(nullptr)},
                   {"eval", labels[i] ? json(labels[i]->eval) : json(nullptr)},
                   {"spec", json::parse(j.spec_json(), nullptr, false)},
                   {"created_at", UnixOrNull(j.created_at())},
                   {"leased_at", UnixOrNull(j.leased_at())},
                   {"finished_at", UnixOrNull(j.finished_at())},
                   {"elapsed_seconds", elapsed < 0 ? json(nullptr) : json(elapsed)},
                   {"eta_seconds", j.eta_seconds() > 0 ? json(j.eta_seconds()) : json(nullptr)}});
    if (out.back()["spec"].is_discarded()) out.back()["spec"] = nullptr;
  }
  return out.dump(2) + "\n";
}

std::vector<std::string> SweepLinesWide(const v1::ListSweepsResponse& sweeps, int64_t now) {
  std::vector<std::vector<std::string>> rows = {{"ID", "NAME", "PRIORITY", "TOTAL", "SUCCEEDED",
                                                 "FAILED", "CANCELED", "SKIPPED", "RUNNING",
                                                 "PENDING", "CREATED", "ELAPSED", "ETA"}};
  for (const v1::Sweep& s : sweeps.sweeps()) {
    const auto [elapsed, eta] = SweepElapsedEta(s, now);
    rows.push_back({std::to_string(s.id()), SweepName(s), std::to_string(s.priority()),
                    std::to_string(s.total()), std::to_string(s.succeeded()),
                    std::to_string(s.failed()), std::to_string(s.canceled()),
                    std::to_string(s.skipped()), std::to_string(s.leased()),
                    std::to_string(s.pending()),
                    UnixTime(s.created_at()), DurationOrDash(elapsed), DurationOrDash(eta)});
  }
  return AlignColumns(std::move(rows));
}

std::vector<std::string> JobLinesWide(const v1::ListJobsResponse& jobs, int64_t now) {
  const std::vector<std::optional<JobLabel>> labels = JobLabels(jobs);
  std::vector<std::vector<std::string>> rows = {{"ID", "STATE", "ATTEMPTS", "QUANT", "EVAL",
                                                 "WORKER", "ELAPSED", "PROGRESS", "PHASE",
                                                 "REASON"}};
  for (int i = 0; i < jobs.jobs_size(); ++i) {
    const v1::Job& j = jobs.jobs(i);
    const bool progressed = Running(j.state()) || j.state() == v1::JOB_STATE_SUCCEEDED;
    rows.push_back({std::to_string(j.id()), std::string(rpc::JobStateDisplayName(j.state())),
                    absl::StrCat(j.attempt(), "/", j.max_attempts()),
                    labels[i] ? labels[i]->quant : "?", labels[i] ? labels[i]->eval : "?",
                    j.worker(), DurationOrDash(JobElapsedSeconds(j, now)),
                    progressed ? absl::StrFormat("%.0f%%", 100 * j.progress()) : "",
                    j.phase(), j.error()});
  }
  return AlignColumns(std::move(rows));
}

std::string DescribeJobText(const v1::JobDescription& d, int64_t now) {
  const v1::Job& j = d.job();
  std::vector<std::vector<std::string>> rows;
  auto row = [&rows](const std::string& name, const std::string& value) {
    rows.push_back({"  " + name + ":", value});
  };
  row("key", j.job_key());
  row("sweep", std::to_string(d.sweep_id()));
  auto spec = JobSpecFromJson(j.spec_json());
  if (spec.ok()) {
    row("model", spec->model);
    if (!spec->run_tag.empty()) row("run tag", spec->run_tag);
    row("quantization", DescribeQuant(spec->quant));
    row("calibration",
        spec->calibration
            ? absl::StrFormat("%s, %d x %d tokens, seed %d, %s", spec->calibration->source,
                              spec->calibration->nsamples, spec->calibration->seqlen,
                              spec->calibration->seed, spec->calibration->dtype)
            : "none");
    const EvalConfig& e = spec->eval;
    std::string settings;
    if (e.seqlen > 0) absl::StrAppend(&settings, "seqlen ", e.seqlen, ", ");
    absl::StrAppend(&settings, e.limit > 0 ? absl::StrCat("limit ", e.limit) : "no limit", ", ");
    if (e.num_fewshot >= 0) absl::StrAppend(&settings, e.num_fewshot, " shots, ");
    absl::StrAppend(&settings, "batch ", e.batch_size, ", ", e.dtype);
    row("task", absl::StrCat(e.task, " (", settings, ")"));
  } else {
    row("spec", "? (" + std::string(spec.status().message()) + ")");
  }
  row("state", std::string(rpc::JobStateDisplayName(j.state())));
  row("attempts", absl::StrCat(j.attempt(), "/", j.max_attempts()));
  row("worker", j.worker().empty() ? "-" : j.worker());
  row("created", UnixTime(j.created_at()));
  row("leased", UnixTime(j.leased_at()));
  row("finished", UnixTime(j.finished_at()));
  row("elapsed", DurationOrDash(JobElapsedSeconds(j, now)));
  if (Running(j.state())) {
    std::string progress = absl::StrFormat("%.0f%%", 100 * j.progress());
    if (!j.phase().empty()) absl::StrAppend(&progress, " ", j.phase());
    if (j.eta_seconds() > 0) {
      absl::StrAppend(&progress, " (eta ", ShortDuration(j.eta_seconds()), ")");
    }
    row("progress", progress);
  }
  if (!j.error().empty()) row("error", j.error());
  row("artifact", d.artifact_key().empty() ? "-" : d.artifact_key());
  row("resources", absl::StrFormat("devices %d, tp %d, memory_gb %g", d.requirements().devices(),
                                   d.tp(), d.requirements().memory_gb()));
  std::string out = absl::StrCat("job ", j.id(), "\n");
  for (const std::string& line : AlignColumns(std::move(rows))) absl::StrAppend(&out, line, "\n");
  absl::StrAppend(&out, "metrics:", d.metrics().empty() ? " none\n" : "\n");
  std::vector<std::vector<std::string>> metrics;
  for (const v1::Metric& m : d.metrics()) {
    metrics.push_back({"  " + m.name(), absl::StrFormat("%.6g", m.value()),
                       m.stderr() > 0 ? absl::StrFormat("stderr %.4g", m.stderr()) : "",
                       absl::StrCat("n ", m.n())});
  }
  for (const std::string& line : AlignColumns(std::move(metrics))) {
    absl::StrAppend(&out, line, "\n");
  }
  // The artifact's per-layer quantization losses, when the worker recorded them.
  const json provenance = json::parse(d.provenance_json(), nullptr, false);
  if (provenance.is_object() && provenance.contains("layer_losses") &&
      provenance["layer_losses"].is_array() && !provenance["layer_losses"].empty()) {
    absl::StrAppend(&out, "quantization loss per layer:\n");
    std::vector<std::vector<std::string>> layers = {
        {"  LAYER", "LOSS", "LINEARS", "NOTES", "MIN CALIB TOKENS"}};
    for (const json& l : provenance["layer_losses"]) {
      if (!l.is_object()) continue;
      const int64_t tokens = l.value("min_calib_tokens", int64_t{-1});
      layers.push_back({absl::StrCat("  ", l.value("layer", int64_t{0})),
                        absl::StrFormat("%.6g", l.value("loss", 0.0)),
                        absl::StrCat(l.value("linears", int64_t{0})),
                        absl::StrCat(l.value("notes", int64_t{0})),
                        tokens < 0 ? "-" : absl::StrCat(tokens)});
    }
    for (const std::string& line : AlignColumns(std::move(layers))) {
      absl::StrAppend(&out, line, "\n");
    }
  }
  absl::StrAppend(&out, "events:\n");
  std::vector<std::vector<std::string>> events;
  for (const v1::JobEventRecord& e : d.events()) {
    events.push_back({"  " + UnixTime(e.at()), e.event(),
                      absl::StrCat(e.from_state().empty() ? "" : e.from_state() + " ", "-> ",
                                   e.to_state()),
                      absl::StrCat("epoch ", e.epoch()), e.worker(), e.reason()});
  }
  for (const std::string& line : AlignColumns(std::move(events))) {
    absl::StrAppend(&out, line, "\n");
  }
  auto indented = [](const std::string& text) {
    const json parsed = json::parse(text, nullptr, false);
    std::string body = parsed.is_discarded() ? text : parsed.dump(2);
    std::string result = "  ";
    for (char c : body) {
      result += c;
      if (c == '\n') result += "  ";
    }
    return result + "\n";
  };
  absl::StrAppend(&out, "spec:\n", indented(j.spec_json()));
  absl::StrAppend(&out, "provenance:\n",
                  indented(d.provenance_json().empty() ? "{}" : d.provenance_json()));
  return out;
}

std::string RenderResults(const v1::QueryResultsResponse& results, const std::string& format,
                          int64_t sweep_id, bool percent) {
  if (format == "json") return ResultRowsJson(results);
  const ResultsTable table = PivotQueryResults(results);
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
