#include "server/results_query.h"

#include <map>

namespace bitsweep::server {

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
  return out;
}

ResultInput ToResultInput(const ResultWithSpec& result) {
  const store::JobResultRow& r = result.row;
  return {r.job_id, result.spec_json, r.metric, r.value, r.stderr_value, r.n, r.provenance_json};
}

}  // namespace bitsweep::server
