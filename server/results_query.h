// The stored results as QueryResults and the dashboard's JSON API answer them: pages of jobs,
// each with its spec, provenance and metrics, read by one statement per page
// (JobStore::ResultsPage); a job that failed because its model diverged (common/diverged.h)
// lists the metric its reason names. Also the results table (common/results_table.h) of a whole
// sweep, built page by page keeping only the rows the table uses. Thread-safe as the store is.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/results_table.h"
#include "common/status.h"
#include "store/job_store.h"

namespace bitsweep::server {

// The metrics `job` lists: its stored ones, or for a job that failed because its model
// diverged the one its reason names, valued +inf, -inf or NaN.
std::vector<store::StoredMetric> MetricsOf(const store::JobResults& job);

// Up to `limit` + 1 jobs with results of sweep `sweep_id` (0: every sweep) after job
// `after_job_id` (the extra one tells FillPage whether more follow). NOT_FOUND for an unknown
// sweep.
StatusOr<std::vector<store::JobResults>> ResultsPageOf(store::JobStore& store, int64_t sweep_id,
                                                       int64_t after_job_id, int32_t limit);

// The names the sweep files gave model folders (`name:`, stored with each sweep), by folder:
// sweep `sweep_id`'s, or for 0 every sweep's, a later sweep's name for a folder replacing an
// earlier one. NOT_FOUND for an unknown sweep.
StatusOr<std::map<std::string, std::string>> ModelNamesOf(store::JobStore& store,
                                                           int64_t sweep_id);

// The table of every result of sweep `sweep_id` (0: every sweep), read a page at a time; only
// headline metrics (IsHeadlineMetric) are kept between pages; models named as ModelNamesOf
// says. NOT_FOUND for an unknown sweep.
StatusOr<ResultsTable> ResultsTableOf(store::JobStore& store, int64_t sweep_id);

}  // namespace bitsweep::server
