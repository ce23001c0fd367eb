#include "cli/report.h"

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/output.h"
#include "common/job_spec.h"
#include "common/results_table.h"
#include "rpc/proto_convert.h"

namespace bitsweep::cli {
namespace {

using nlohmann::json;

// The study's columns in the order of its tables, with the names its tables print. The task
// names are the catalog's (common/catalog.cc); columns of other tasks follow these.
constexpr std::pair<const char*, const char*> kPaperTasks[] = {{"wikitext2", "WikiText-2"},
                                                               {"c4", "C4"},
                                                               {"piqa", "PIQA"},
                                                               {"arc_easy", "ARC-E"},
                                                               {"arc_challenge", "ARC-C"},
                                                               {"hellaswag", "HellaSwag"},
                                                               {"winogrande", "WinoGrande"},
                                                               {"boolq", "BoolQ"},
                                                               {"mmlu", "MMLU"}};

// A provenance list: each distinct value with how many jobs recorded it and the first ids, in
// order of first appearance (so the report reads the same for the same sweep).
constexpr size_t kJobIdsShown = 20;

class Distinct {
 public:
  void Add(const json& value, int64_t job_id) {
    const std::string key = value.dump();
    auto [it, inserted] = index_.try_emplace(key, items_.size());
    if (inserted) items_.push_back({value, 0, {}});
    Item& item = items_[it->second];
    ++item.jobs;
    if (item.ids.size() < kJobIdsShown) item.ids.push_back(job_id);
  }
  json ToJson() const {
    json out = json::array();
    for (const Item& item : items_) {
      json o = item.value.is_object() ? item.value : json{{"value", item.value}};
      o["jobs"] = item.jobs;
      o["job_ids"] = item.ids;
      out.push_back(std::move(o));
    }
    return out;
  }

 private:
  struct Item {
    json value;
    int64_t jobs;
    std::vector<int64_t> ids;
  };
  std::map<std::string, size_t> index_;
  std::vector<Item> items_;
};

std::string Text(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// What the stored provenance of the sweep's results says: code versions, checkpoints, the data
// files each task read (with their SHA-256 where the worker recorded it), calibration, seeds,
// and where the jobs ran.
json ProvenanceSummary(const v1::QueryResultsResponse& results,
                       const std::function<std::string(const std::string&)>& model_name) {
  Distinct code, checkpoints, data, calibrations, seeds, workers, devices;
  int64_t jobs = 0;
  for (const v1::JobResults& job : results.jobs()) {
    const json p = json::parse(job.provenance_json(), nullptr, false);
    if (!p.is_object() || p.empty()) continue;
    ++jobs;
    const int64_t id = job.job_id();
    auto spec = JobSpecFromJson(job.spec_json());
    const std::string model = model_name(spec.ok() ? spec->model : Text(p, "model"));
    const std::string task = spec.ok() ? spec->eval.task : "";
    if (!Text(p, "code_version").empty()) code.Add(Text(p, "code_version"), id);
    if (!Text(p, "checkpoint_digest").empty()) {
      checkpoints.Add(json{{"model", model}, {"digest", Text(p, "checkpoint_digest")}}, id);
    }
    // The files a task read: the worker's data_files ({path, sha256}) when it recorded them,
    // else the file its evaluation names (no hash known).
    std::set<std::string> hashed;
    if (p.contains("data_files") && p["data_files"].is_array()) {
      for (const json& f : p["data_files"]) {
        if (!f.is_object() || Text(f, "path").empty()) continue;
        hashed.insert(Text(f, "path"));
        data.Add(json{{"task", task}, {"file", Text(f, "path")}, {"sha256", Text(f, "sha256")}},
                 id);
      }
    }
    if (p.contains("eval") && p["eval"].is_object()) {
      for (const char* key : {"file", "source"}) {
        const std::string file = Text(p["eval"], key);
        if (!file.empty() && hashed.insert(file).second) {
          data.Add(json{{"task", task}, {"file", file}, {"sha256", ""}}, id);
        }
      }
    }
    if (p.contains("calibration") && p["calibration"].is_object()) {
      json c = p["calibration"];
      c["method"] = spec.ok() ? spec->quant.method : "";
      calibrations.Add(c, id);
      if (c.contains("seed")) seeds.Add(json{{"what", "calibration"}, {"seed", c["seed"]}}, id);
    }
    if (!Text(p, "worker").empty()) workers.Add(Text(p, "worker"), id);
    if (!Text(p, "device").empty()) devices.Add(Text(p, "device"), id);
  }
  return {{"jobs", jobs},
          {"code_versions", code.ToJson()},
          {"checkpoints", checkpoints.ToJson()},
          {"data_files", data.ToJson()},
          {"calibrations", calibrations.ToJson()},
          {"seeds", seeds.ToJson()},
          {"workers", workers.ToJson()},
          {"devices", devices.ToJson()}};
}

json SweepJson(const ReportSweep& r) {
  std::map<int64_t, std::string> skipped;  // job id -> the early_abort rule's reason
  std::set<int64_t> with_metrics;
  for (const v1::JobResults& job : r.results.jobs()) {
    if (!job.skipped_reason().empty()) skipped[job.job_id()] = job.skipped_reason();
    if (job.metrics_size() > 0) with_metrics.insert(job.job_id());
  }
  // As the table names models: the sweep's `name:`, else the folder's.
  auto model_name = [&r](const std::string& model) {
    auto named = r.results.model_names().find(model);
    return named != r.results.model_names().end() ? named->second : ModelDisplayName(model);
  };
  std::vector<ResultInput> failed;
  json problems = json::array();
  int64_t pending = 0;
  for (const v1::Job& job : r.jobs.jobs()) {
    const v1::JobState state = job.state();
    if (state == v1::JOB_STATE_PENDING || state == v1::JOB_STATE_LEASED ||
        state == v1::JOB_STATE_CANCEL_REQUESTED) {
      ++pending;
    }
    if (state != v1::JOB_STATE_FAILED && state != v1::JOB_STATE_SKIPPED &&
        state != v1::JOB_STATE_CANCELED) {
      continue;
    }
    auto spec = JobSpecFromJson(job.spec_json());
    std::string reason = job.error();
    if (state == v1::JOB_STATE_SKIPPED && skipped.count(job.id())) reason = skipped[job.id()];
    if (state == v1::JOB_STATE_CANCELED && reason.empty()) reason = "canceled";
    // A diverged job failed with its metric stored (inf): the table shows that value.
    if (state == v1::JOB_STATE_FAILED && !with_metrics.count(job.id())) {
      failed.push_back(FailedResultInput(job.id(), job.spec_json(), reason));
    }
    problems.push_back({{"job_id", job.id()},
                        {"state", std::string(rpc::JobStateDisplayName(state))},
                        {"model", spec.ok() ? model_name(spec->model) : "?"},
                        {"quant", spec.ok() ? DescribeQuant(spec->quant) : "?"},
                        {"task", spec.ok() ? spec->eval.task : "?"},
                        {"reason", reason}});
  }
  const v1::Sweep& s = r.sweep;
  return {{"id", s.id()},
          {"name", s.name()},
          {"run_tag", s.run_tag()},
          {"created_at", s.created_at()},
          {"total", s.total()},
          {"succeeded", s.succeeded()},
          {"failed", s.failed()},
          {"skipped", s.skipped()},
          {"canceled", s.canceled()},
          {"pending", pending},
          {"table", json::parse(ResultsTableToJson(PivotQueryResults(r.results, failed)))},
          {"problems", std::move(problems)},
          {"provenance", ProvenanceSummary(r.results, model_name)}};
}

}  // namespace

std::string ReportTitle(const ReportSweep& sweep, const ReportSweep* compare) {
  auto name = [](const ReportSweep& r) {
    return absl::StrCat("sweep ", r.sweep.id(), " (", SweepName(r.sweep), ")");
  };
  std::string title = absl::StrCat("bitsweep report: ", name(sweep));
  if (compare != nullptr) absl::StrAppend(&title, " vs ", name(*compare));
  return title;
}

std::string ReportJson(const ReportSweep& sweep, const ReportSweep* compare) {
  json tasks = json::array();
  for (const auto& [task, title] : kPaperTasks) tasks.push_back({{"task", task}, {"title", title}});
  json sweeps = json::array({SweepJson(sweep)});
  if (compare != nullptr) sweeps.push_back(SweepJson(*compare));
  // Invalid UTF-8 in a stored error must not make the whole report fail.
  return json{{"title", ReportTitle(sweep, compare)},
              {"paper_tasks", std::move(tasks)},
              {"sweeps", std::move(sweeps)}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace bitsweep::cli
