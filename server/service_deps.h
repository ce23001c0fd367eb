// ServiceDeps: what both gRPC services share, owned by the Coordinator, which outlives them.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "common/path_roots.h"
#include "server/job_board.h"
#include "server/metrics.h"
#include "store/job_store.h"

namespace bitsweep::server {

struct ServiceDeps {
  store::JobStore* store = nullptr;
  ServerMetrics* metrics = nullptr;
  JobBoard* board = nullptr;
  absl::Duration lease_ttl = absl::Seconds(60);
  absl::Duration watch_poll_interval = absl::Milliseconds(500);
  // SubmitSweep's limit on a sweep's grid (ServerConfig::max_jobs_per_sweep).
  int64_t max_jobs_per_sweep = 100000;
  // SubmitSweep checks the sweep's input files (ServerConfig::check_inputs).
  bool check_inputs = true;
  // The only clock the services read (P11): absl::Now in production.
  std::function<absl::Time()> now = [] { return absl::Now(); };
  // Set when the server is shutting down; WatchSweep streams end at their next poll.
  const std::atomic<bool>* stopping = nullptr;
  // Where a submitted sweep's paths may lead (ServerConfig::model_roots, data_roots).
  PathRoots roots;
};

// The worker's registered name: from the JobBoard cache, else from the store (then cached).
// "" when the id is unknown or the store cannot answer (names only decorate provenance).
inline std::string WorkerName(const ServiceDeps& deps, int64_t worker_id) {
  if (auto w = deps.board->Worker(worker_id)) return w->name;
  auto info = deps.store->GetWorker(worker_id);
  if (!info.ok()) return "";
  deps.board->PutWorker(worker_id, WorkerEntry{info->name, info->capabilities});
  return info->name;
}

}  // namespace bitsweep::server
