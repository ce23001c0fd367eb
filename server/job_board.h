// JobBoard: the coordinator's volatile, in-memory view of what workers report between database
// writes: a cache of registered workers' names and capabilities (the registry itself is the
// workers table), each leased job's progress and phase, and when (and for which method and task)
// each job was leased, for the job duration metric. Nothing here is needed for correctness:
// after a coordinator restart the cache refills from the store and progress reappears with the
// next heartbeat. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/job_store.h"

namespace bitsweep::server {

struct WorkerEntry {
  std::string name;
  store::Capabilities capabilities;
};

struct JobProgress {
  double progress = 0;  // [0, 1]
  std::string phase;
  // When the running attempt was leased (filled in by JobBoard::Progress; nullopt when this
  // process did not see the lease).
  std::optional<absl::Time> leased_at;
};

struct LeaseEntry {
  absl::Time leased_at;
  std::string method;  // catalog method name ("gptq")
  std::string task;    // catalog task name, or "file" for a task given as a path
};

class JobBoard {
 public:
  void PutWorker(int64_t worker_id, WorkerEntry entry);
  // The cached entry; nullopt when this process has not seen the worker (see WorkerName).
  std::optional<WorkerEntry> Worker(int64_t worker_id) const;

  // Records a new lease (and forgets the previous attempt's progress).
  void Leased(int64_t job_id, LeaseEntry entry);
  void SetProgress(int64_t job_id, JobProgress progress);
  // The progress last reported and when the attempt was leased; nullopt when neither is known.
  std::optional<JobProgress> Progress(int64_t job_id) const;
  // Forgets the job's lease and progress; returns the lease when one was recorded.
  std::optional<LeaseEntry> Finished(int64_t job_id);

 private:
  mutable absl::Mutex mu_;
  std::map<int64_t, WorkerEntry> workers_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, JobProgress> progress_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, LeaseEntry> leases_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bitsweep::server
