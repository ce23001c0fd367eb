#include "server/results_query.h"

#include <map>
#include <optional>
#include <set>

#include "common/diverged.h"

namespace bitsweep::server {

namespace {

// A job that failed because its model diverged (common/diverged.h) has no stored result, but the
// study's tables show such a model: its cell reads "inf" (or "nan"). One row per such job, with
// the value its reason names and no provenance.
Status AppendDiverged(store::JobStore& store, int64_t sweep_id, std::vector<ResultWithSpec>* out) {
  std::vector<int64_t> sweeps;
  if (sweep_id != 0) {
    sweeps.push_back(sweep_id);
  } else {
    ASSIGN_OR_RETURN(std::vector<store::SweepInfo> all, store.ListSweeps());
    for (const store::SweepInfo& s : all) sweeps.push_back(s.id);
  }
  std::set<int64_t> seen;  // a job shared by several sweeps appears once
  for (int64_t id : sweeps) {
    ASSIGN_OR_RETURN(std::vector<store::JobInfo> jobs, store.ListJobs(id));
    for (store::JobInfo& job : jobs) {
      if (job.state != JobState::kFailed || !seen.insert(job.id).second) continue;
      const std::optional<DivergedMetric> diverged = ParseDivergedReason(job.last_error);
      if (!diverged.has_value()) continue;
      ResultWithSpec r;
      r.row.metric = diverged->metric;
      r.row.value = diverged->value;
      r.row.provenance_json = "{}";
      r.row.job_id = job.id;
      r.row.job_key = job.job_key;
      r.spec_json = std::move(job.spec_json);
      out->push_back(std::move(r));
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::vector<ResultWithSpec>> ResultsWithSpecs(store::JobStore& store, int64_t sweep_id) {
  store::ResultFilter filter;
  if (sweep_id != 0) {
    RETURN_IF_ERROR(store.GetSweep(sweep_id).status());
    filter.sweep_id = sweep_id;
  }
  ASSIGN_OR_RETURN(std::vector<store::JobResultRow> rows, store.Results(filter));
  std::map<int64_t, std::string> spec_by_job;
  std::vector<ResultWithSpec> out;
  out.reserve(rows.size());
  for (auto& row : rows) {
    auto it = spec_by_job.find(row.job_id);
    if (it == spec_by_job.end()) {
      ASSIGN_OR_RETURN(store::JobInfo job, store.GetJob(row.job_id));
      it = spec_by_job.emplace(row.job_id, std::move(job.spec_json)).first;
    }
    out.push_back({std::move(row), it->second});
  }
  RETURN_IF_ERROR(AppendDiverged(store, sweep_id, &out));
  return out;
}

ResultInput ToResultInput(const ResultWithSpec& result) {
  const store::JobResultRow& r = result.row;
  return {r.job_id, result.spec_json, r.metric, r.value, r.stderr_value, r.n, r.provenance_json};
}

}  // namespace bitsweep::server
