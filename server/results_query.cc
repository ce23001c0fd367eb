#include "server/results_query.h"

#include <optional>

#include "common/diverged.h"
#include "server/paging.h"

namespace bitsweep::server {

std::vector<store::StoredMetric> MetricsOf(const store::JobResults& job) {
  if (job.state != JobState::kFailed) return job.metrics;
  // A diverged model has no stored result, but the study's tables show it: its cell reads "inf"
  // (or "nan").
  const std::optional<DivergedMetric> diverged = ParseDivergedReason(job.last_error);
  if (!diverged.has_value()) return {};
  store::StoredMetric m;
  m.metric = diverged->metric;
  m.value = diverged->value;
  return {m};
}

StatusOr<std::vector<store::JobResults>> ResultsPageOf(store::JobStore& store, int64_t sweep_id,
                                                       int64_t after_job_id, int32_t limit) {
  if (sweep_id != 0 && after_job_id == 0) RETURN_IF_ERROR(store.GetSweep(sweep_id).status());
  return store.ResultsPage(sweep_id, after_job_id, limit + 1);
}

StatusOr<ResultsTable> ResultsTableOf(store::JobStore& store, int64_t sweep_id) {
  std::vector<ResultInput> inputs;
  int64_t after = 0;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<store::JobResults> page,
                     ResultsPageOf(store, sweep_id, after, kMaxPageSize));
    if (page.empty()) break;
    for (const store::JobResults& job : page) {
      for (store::StoredMetric& m : MetricsOf(job)) {
        if (!IsHeadlineMetric(m.metric)) continue;
        // A diverged job has no stored row, so no provenance: PivotResults places it by its spec.
        inputs.push_back({job.job_id, job.spec_json, std::move(m.metric), m.value, m.stderr_value,
                          m.n, job.provenance_json});
      }
    }
    after = page.back().job_id;
  }
  return PivotResults(inputs);
}

}  // namespace bitsweep::server
