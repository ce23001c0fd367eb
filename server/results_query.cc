#include "server/results_query.h"

#include <nlohmann/json.hpp>
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

StatusOr<std::map<std::string, std::string>> ModelNamesOf(store::JobStore& store,
                                                           int64_t sweep_id) {
  std::vector<store::SweepInfo> sweeps;
  if (sweep_id != 0) {
    ASSIGN_OR_RETURN(store::SweepInfo sweep, store.GetSweep(sweep_id));
    sweeps.push_back(std::move(sweep));
  } else {
    ASSIGN_OR_RETURN(sweeps, store.ListSweeps());  // oldest first
  }
  std::map<std::string, std::string> names;
  for (const store::SweepInfo& sweep : sweeps) {
    const nlohmann::json j = nlohmann::json::parse(sweep.spec_json, nullptr, false);
    if (!j.is_object() || !j.contains("model_names") || !j.at("model_names").is_object()) continue;
    const nlohmann::json& named = j.at("model_names");
    for (auto it = named.begin(); it != named.end(); ++it) {
      if (it.value().is_string()) names[it.key()] = it.value().get<std::string>();
    }
  }
  return names;
}

StatusOr<ResultsTable> ResultsTableOf(store::JobStore& store, int64_t sweep_id) {
  std::vector<ResultInput> inputs;
  int64_t after = 0;
  while (true) {
    ASSIGN_OR_RETURN(std::vector<store::JobResults> page,
                     ResultsPageOf(store, sweep_id, after, kMaxPageSize));
    if (page.empty()) break;
    for (const store::JobResults& job : page) {
      if (job.state == JobState::kSkipped) {
        inputs.push_back(SkippedResultInput(job.job_id, job.spec_json, job.last_error));
        continue;
      }
      for (store::StoredMetric& m : MetricsOf(job)) {
        if (!IsHeadlineMetric(m.metric)) continue;
        // A diverged job has no stored row, so no provenance: PivotResults places it by its spec.
        inputs.push_back({job.job_id, job.spec_json, std::move(m.metric), m.value, m.stderr_value,
                          m.n, job.provenance_json});
      }
    }
    after = page.back().job_id;
  }
  ASSIGN_OR_RETURN(auto names, ModelNamesOf(store, sweep_id));
  return PivotResults(inputs, names);
}

}  // namespace bitsweep::server
