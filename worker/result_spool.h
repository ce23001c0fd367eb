// ResultSpool: the finished results a worker still has to deliver, kept on local disk so that
// no outage of the coordinator or its database, and no restart of the worker, loses one
// (README "Reliability"). The worker puts a job's result here before its first Complete and
// removes it once the coordinator has taken it (or has said the lease was fenced); a worker
// starting on the same state directory sends whatever it finds here first.
//
// Layout: <dir>/job-<job id>-epoch-<lease epoch>.json, one file per result (the lease, the
// metrics, the provenance, the end of the job's output: "log_tail", absent in older files),
// written as <file>.tmp, fsynced, renamed into place and the directory fsynced: a file in the
// spool is always whole, also after a power cut. <dir>/.lock is held
// (flock) while a ResultSpool is open, so that two workers never share a spool.
//
// Not thread-safe (the worker's loop owns it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "worker/coordinator_client.h"
#include "worker/job_runner.h"

namespace bitsweep::worker {

// One result waiting for its Complete.
struct SpooledResult {
  JobLease lease;
  std::vector<MetricRow> metrics;
  std::string provenance_json;
  std::string cluster_id;  // of the coordinator that leased the job (Registration::cluster_id)
  std::string path;        // its file in the spool
  std::string log_tail;    // the end of the job process's output ("" = none)
};

class ResultSpool {
 public:
  // Opens (creating it, mode 0700, when missing) the spool directory `dir` and locks it.
  // FAILED_PRECONDITION when another live worker holds it; INTERNAL when it cannot be created.
  static StatusOr<std::unique_ptr<ResultSpool>> Open(const std::string& dir);
  ~ResultSpool();
  ResultSpool(const ResultSpool&) = delete;
  ResultSpool& operator=(const ResultSpool&) = delete;

  // Writes one result durably (see the layout above), replacing one of the same job and epoch.
  // INTERNAL (naming the file and errno) when the disk refuses.
  StatusOr<SpooledResult> Put(const JobLease& lease, const std::vector<MetricRow>& metrics,
                              const std::string& provenance_json, const std::string& cluster_id,
                              const std::string& log_tail = "");
  // Every result in the spool, by job id. A file that cannot be read back is renamed to
  // <file>.corrupt and its name added to `unreadable` (when not null).
  std::vector<SpooledResult> List(std::vector<std::string>* unreadable = nullptr) const;
  // Deletes a result's file (gone already: OK).
  Status Remove(const SpooledResult& result);

  const std::string& dir() const { return dir_; }

 private:
  ResultSpool(std::string dir, int lock_fd) : dir_(std::move(dir)), lock_fd_(lock_fd) {}

  std::string dir_;
  int lock_fd_;
};

}  // namespace bitsweep::worker
