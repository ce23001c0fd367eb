// PgJobStore: JobStore over PostgreSQL. Private to store/; its methods live in one file per
// concern:
//   store/job_store.cc     Open, options, Transact (connections, retries, error mapping)
//   store/submit.cc        SubmitSweep, RegisterWorker
//   store/lease.cc         Lease (combined), the single-statement lease, LeaseMany
//   store/transitions.cc   LockJob, Transition (one set clause per destination), replays, fences
//   store/worker_calls.cc  Heartbeat, Complete, Fail, ExpireLeases
//   store/cancel.cc        CancelSweep, CancelJob
//   store/reads.cc         GetWorker, sweeps, jobs, results, events, counts
//   store/early_abort.cc   the early-abort rule applied to an artifact's pending jobs
#pragma once

#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "store/internal/connection_pool.h"
#include "store/internal/lease_combiner.h"
#include "store/job_store.h"

namespace bitsweep::store::internal {

class PgJobStore final : public JobStore {
 public:
  PgJobStore(const std::string& conninfo, const JobStoreOptions& options);

  StatusOr<int64_t> SubmitSweep(const std::string& request_id, const std::string& name,
                                const std::string& spec_json, int32_t priority,
                                const std::vector<NewJob>& jobs, absl::Time now,
                                SubmitCounts* counts = nullptr) override;
  StatusOr<int64_t> RegisterWorker(const WorkerInfo& worker, absl::Time now,
                                   absl::Duration live) override;
  StatusOr<WorkerInfo> GetWorker(int64_t worker_id) override;
  StatusOr<std::optional<LeasedJob>> Lease(int64_t worker_id, absl::Time now, absl::Duration ttl,
                                           const std::string& request_id,
                                           const std::string& session) override;
  std::vector<StatusOr<std::optional<LeasedJob>>> LeaseMany(
      const std::vector<LeaseRequest>& requests) override;
  StatusOr<HeartbeatReply> Heartbeat(int64_t job_id, int64_t epoch, absl::Time now,
                                     absl::Duration ttl, const std::string& session) override;
  StatusOr<JobState> Complete(int64_t job_id, int64_t epoch,
                              const std::vector<JobResultRow>& results, absl::Time now,
                              const std::string& session) override;
  StatusOr<JobState> Fail(int64_t job_id, int64_t epoch, const std::string& reason, bool retryable,
                          absl::Time now, const std::string& session) override;
  StatusOr<int64_t> ExpireLeases(absl::Time now) override;
  Status Ping() override;
  StatusOr<std::string> ClusterId() override;
  StatusOr<int64_t> CancelSweep(int64_t sweep_id, const std::string& reason,
                                absl::Time now) override;
  Status CancelJob(int64_t job_id, const std::string& reason, absl::Time now) override;
  StatusOr<SweepInfo> GetSweep(int64_t sweep_id) override;
  StatusOr<std::vector<SweepInfo>> ListSweeps() override;
  StatusOr<JobInfo> GetJob(int64_t job_id) override;
  StatusOr<std::vector<JobInfo>> ListJobs(int64_t sweep_id) override;
  StatusOr<std::vector<JobResultRow>> Results(const ResultFilter& filter) override;
  StatusOr<std::vector<JobEventRow>> Events(int64_t job_id) override;
  StatusOr<std::vector<SweepInfo>> ListSweepsPage(int64_t before_id, int32_t limit) override;
  StatusOr<std::vector<JobInfo>> ListJobsPage(const JobFilter& filter, int64_t after_id,
                                              int32_t limit) override;
  StatusOr<std::vector<JobResults>> ResultsPage(int64_t sweep_id, int64_t after_job_id,
                                                int32_t limit) override;
  StatusOr<std::map<JobState, int64_t>> CountJobsByState() override;
  Status PutJobLog(int64_t job_id, int64_t epoch, const std::string& text,
                   absl::Time now) override;
  StatusOr<JobLog> GetJobLog(int64_t job_id) override;
  StatusOr<EarlyAbortSavings> EarlyAbortTotals() override;
  StatusOr<int64_t> DecideHeldEarlyAborts(absl::Time now) override;

 private:
  // kTransaction: `body` runs in one transaction (BEGIN ... COMMIT), committed when it returns
  // OK, rolled back otherwise. kOneStatement: `body` runs one statement (or only reads) in
  // autocommit, which PostgreSQL makes atomic on its own: two round trips fewer on the hot paths
  // (Lease, Heartbeat, GetJob). Serialization failures and deadlocks are retried a few times,
  // then ABORTED (P7).
  enum class Mode { kTransaction, kOneStatement };
  using Body = std::function<Status(pqxx::transaction_base&)>;
  Status Transact(const std::string& what, const Body& body, Mode mode = Mode::kTransaction);

  // The row of a job locked for update, with what every transition needs.
  struct Locked {
    JobState state;
    int64_t epoch;
    int32_t attempt, max_attempts;
    int64_t worker_id;           // 0: none
    std::string holder_session;  // the session of worker_id ("" when none)
  };
  static StatusOr<Locked> LockJob(pqxx::transaction_base& tx, int64_t job_id);
  // Moves a locked job along `event` (guarded by its source states and epoch), sets the columns
  // of its destination (SetClause in transitions.cc) and records it; returns the destination.
  // `not_before` matters for destination PENDING; `reason` is the event's (and for failures the
  // job's last_error).
  static StatusOr<JobState> Transition(pqxx::transaction_base& tx, int64_t job_id,
                                       const Locked& job, JobEvent event, absl::Time now,
                                       absl::Time not_before, const std::string& reason);
  // Lease gone: NOT_FOUND, stale epoch or wrong state -> FAILED_PRECONDITION.
  static Status Fenced(const std::string& what, int64_t job_id, int64_t epoch, const Locked& job);
  // FAILED_PRECONDITION when `session` is not the session of the job's holder.
  static Status CheckSession(const std::string& what, int64_t job_id, const Locked& job,
                             const std::string& session);
  // True when an event of `kinds` was already recorded for (job, epoch): a replayed call.
  static bool AlreadyApplied(pqxx::transaction_base& tx, int64_t job_id, int64_t epoch,
                             const std::vector<JobEvent>& kinds);
  absl::Duration Backoff(int32_t attempt) const;

  // Early abort (common/early_abort.h PlanEarlyAbort) over the jobs of one artifact: SKIPs the
  // pending jobs its `on` result condemns under their sweeps' rules and releases the holds of
  // those it clears. Returns how many it skipped.
  static StatusOr<int64_t> EarlyAbortArtifact(pqxx::transaction_base& tx,
                                              const std::string& artifact_key, absl::Time now);
  // EarlyAbortArtifact, in a transaction of its own, for every artifact job `job_id`'s result
  // decides: its own (a quantized job) and those measured against it (a baseline).
  Status EarlyAbortAfter(int64_t job_id, absl::Time now);

  // A batch from the combiner: first the replays (requests whose request id still holds a job get
  // it again, LeaseReplays), then the rest: one request is the single-statement lease, more are
  // LeaseMany. A request id repeated within the batch is served once.
  std::vector<StatusOr<std::optional<LeasedJob>>> ServeLeases(
      const std::vector<LeaseRequest>& requests);
  // The jobs still held under the requests' (worker, request id), renewed; by request index.
  StatusOr<std::map<std::size_t, LeasedJob>> LeaseReplays(
      const std::vector<LeaseRequest>& requests);
  StatusOr<std::optional<LeasedJob>> LeaseOne(const LeaseRequest& request);

  const JobStoreOptions options_;
  ConnectionPool pool_;
  LeaseCombiner leases_;
};

}  // namespace bitsweep::store::internal
