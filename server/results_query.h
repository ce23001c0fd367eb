// The stored results joined with the spec of the job that produced each row: what the gRPC
// QueryResults and the dashboard's /api/results answer, read here once for both. The store keeps
// result rows by job key and specs by job, so the join asks for each distinct job once.
// Thread-safe as the store is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/results_table.h"
#include "common/status.h"
#include "store/job_store.h"

namespace bitsweep::server {

struct ResultWithSpec {
  store::JobResultRow row;
  std::string spec_json;  // of row.job_id
};

// Every stored result of sweep `sweep_id` (0: of every sweep), in the store's order, then one row
// for each FAILED job whose model diverged (common/diverged.h): the metric its reason names with
// the value +inf, -inf or NaN, no provenance. NOT_FOUND for an unknown sweep.
StatusOr<std::vector<ResultWithSpec>> ResultsWithSpecs(store::JobStore& store, int64_t sweep_id);

// One row as the results pivot reads it (common/results_table.h).
ResultInput ToResultInput(const ResultWithSpec& result);

}  // namespace bitsweep::server
