#include "server/job_board.h"

#include <utility>

namespace bitsweep::server {
namespace {

// A copy of the entry under `key`, nullopt when there is none.
template <typename Map>
std::optional<typename Map::mapped_type> Find(const Map& map, int64_t key) {
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  return it->second;
}

}  // namespace

void JobBoard::PutWorker(int64_t worker_id, WorkerEntry entry) {
  absl::MutexLock lock(&mu_);
  workers_[worker_id] = std::move(entry);
}

std::optional<WorkerEntry> JobBoard::Worker(int64_t worker_id) const {
  absl::MutexLock lock(&mu_);
  return Find(workers_, worker_id);
}

void JobBoard::Leased(int64_t job_id, LeaseEntry entry) {
  absl::MutexLock lock(&mu_);
  leases_[job_id] = std::move(entry);
  progress_.erase(job_id);
}

void JobBoard::SetProgress(int64_t job_id, JobProgress progress) {
  absl::MutexLock lock(&mu_);
  progress_[job_id] = std::move(progress);
}

std::optional<JobProgress> JobBoard::Progress(int64_t job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = progress_.find(job_id);
  auto lease = leases_.find(job_id);
  if (it == progress_.end() && lease == leases_.end()) return std::nullopt;
  JobProgress out = it == progress_.end() ? JobProgress{} : it->second;
  if (lease != leases_.end()) out.leased_at = lease->second.leased_at;
  return out;
}

std::optional<LeaseEntry> JobBoard::Finished(int64_t job_id) {
  absl::MutexLock lock(&mu_);
  progress_.erase(job_id);
  auto it = leases_.find(job_id);
  if (it == leases_.end()) return std::nullopt;
  LeaseEntry entry = std::move(it->second);
  leases_.erase(it);
  return entry;
}

}  // namespace bitsweep::server
