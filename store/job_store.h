// JobStore: sweeps, jobs, leases and results in PostgreSQL; the coordinator's single source of
// truth, so a restarted coordinator loses nothing and two of them never disagree.
//
// Every job state change goes through common/job_state.h Apply(), is guarded in SQL by the
// table's source states (and, for worker calls, by the lease epoch), and appends a job_events
// row in the same transaction. Time is always a parameter; the store never reads a clock.
// Errors follow P7: FAILED_PRECONDITION for a stale epoch or impossible transition, UNAVAILABLE
// when PostgreSQL is unreachable (the next call reconnects), ABORTED when a conflict persisted
// after retries, NOT_FOUND for unknown ids, INVALID_ARGUMENT naming the bad field.
// Thread-safe: calls borrow connections from an internal pool.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/job_state.h"
#include "common/status.h"

namespace bitsweep::store {

struct JobStoreOptions {
  // Most connections open at once; callers beyond it wait for one. Default 16.
  int max_connections = 16;
  // Retryable failures wait backoff_base * 2^(attempt-1), capped at backoff_max, before the job
  // may be leased again.
  absl::Duration backoff_base = absl::Seconds(1);
  absl::Duration backoff_max = absl::Minutes(5);
  Status Validate() const;
};

// What a job needs from a worker, and what a worker offers. A job fits a worker when each of
// the job's numbers is <= the worker's: devices (a worker runs one job at a time, so an idle
// worker's free devices are all of its devices; a CPU job from a JobSpec needs 1 and a CPU
// worker offers 1), memory_gb (a job's 0 = no constraint; a worker's 0 fits only those) and tp
// (the job's tensor-parallel size against the worker's largest).
struct Capabilities {
  int32_t devices = 0;   // accelerators (or CPU sockets)
  double memory_gb = 0;  // memory per job, GiB
  int32_t tp = 1;        // tensor-parallel degree (job) or the largest one (worker)
};

struct NewJob {
  std::string job_key;       // unique content key; a key already stored is linked, not copied
  std::string artifact_key;  // checkpoint the job loads (lease prefers workers holding it)
  std::string spec_json;     // the job spec (valid JSON)
  int32_t priority = 0;      // higher first
  int32_t max_attempts = 3;  // >= 1
  Capabilities needs;
  // Early abort (common/early_abort.h): the job key of the job's baseline (BaselineJobKey; ""
  // for a baseline job), and how long a new job is held back (not leased) while its artifact's
  // perplexity result is awaited (0: leased at once). The rule is the sweep's spec_json
  // "early_abort" object.
  std::string baseline_key;
  absl::Duration hold = absl::ZeroDuration();
};

struct JobResultRow {
  std::string metric;
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
  std::string provenance_json = "{}";
  int64_t job_id = 0;   // filled when read back
  std::string job_key;  // filled when read back
};

struct WorkerInfo {
  std::string name;  // unique; registering a known name updates that worker
  // The worker process's secret session ("" = none): see RegisterWorker. Never read back.
  std::string session;
  Capabilities capabilities;
  std::string labels_json = "{}";  // a JSON object of string labels
  std::string gpus_json = "[]";    // a JSON array of its GPUs (RegisterRequest.gpus)
  // Artifact keys already loaded; read back, also those of the jobs it completed, each once,
  // in the order gained.
  std::vector<std::string> artifacts;
  int64_t id = 0;             // filled when read back
  absl::Time last_heartbeat;  // filled when read back: last register, lease or beat
};

struct LeasedJob {
  int64_t job_id = 0;
  std::string job_key;
  std::string artifact_key;
  std::string spec_json;
  int64_t epoch = 0;  // fencing token: every later call about this job carries it
  int32_t attempt = 0;
  absl::Time deadline;
};

// One worker's request in LeaseMany.
struct LeaseRequest {
  int64_t worker_id = 0;
  absl::Time now;
  absl::Duration ttl;
  // The worker's idempotency key ("" = none): see JobStore::Lease.
  std::string request_id;
  // The worker's session ("" matches a worker registered without one): see JobStore::Lease.
  std::string session;
};

struct HeartbeatReply {
  bool cancel_requested = false;
};

struct JobInfo {
  int64_t id = 0;
  int64_t sweep_id = 0;  // the sweep that first submitted it
  std::string job_key, artifact_key, spec_json;
  JobState state = JobState::kPending;
  int32_t priority = 0, attempt = 0, max_attempts = 0;
  int64_t lease_epoch = 0;
  std::optional<int64_t> worker_id;
  std::string worker_name;  // of worker_id ("" when none)
  std::optional<absl::Time> lease_deadline;
  absl::Time not_before;
  bool cancel_requested = false;
  Capabilities needs;
  std::string last_error;
  absl::Time created_at;
  std::optional<absl::Time> leased_at;    // of the latest attempt; empty before the first lease
  std::optional<absl::Time> finished_at;  // empty until SUCCEEDED, FAILED or CANCELED
};

struct SweepInfo {
  int64_t id = 0;
  std::string request_id, name, spec_json;
  int32_t priority = 0;
  std::string state;  // ACTIVE or CANCELED
  absl::Time created_at;
  std::map<JobState, int64_t> jobs_by_state;  // of the jobs this sweep asked for
  // Of its SKIPPED jobs: the estimated worker-seconds they saved (jobs.saved_seconds).
  double saved_seconds = 0;
};

struct JobEventRow {
  absl::Time at;
  std::optional<JobState> from;  // empty for SUBMIT
  JobState to = JobState::kPending;
  JobEvent event = JobEvent::kSubmit;
  int64_t epoch = 0;
  std::optional<int64_t> worker_id;
  std::string reason;
};

struct ResultFilter {
  std::optional<int64_t> sweep_id;
  std::optional<std::string> job_key;
  std::optional<std::string> metric;
};

// Which jobs ListJobsPage lists.
struct JobFilter {
  int64_t sweep_id = 0;           // 0: every sweep's (each job once, even when shared)
  std::optional<JobState> state;  // empty: every state
};

// A metric without its provenance (JobResults carries that once per job).
struct StoredMetric {
  std::string metric;
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
};

// One job's stored results, or a FAILED job whose reason says its model diverged
// (common/diverged.h: no metrics; the caller reads the metric from last_error).
struct JobResults {
  int64_t job_id = 0;
  std::string job_key, spec_json;
  JobState state = JobState::kSucceeded;
  std::string last_error;
  // Once per job: every metric of a job comes from one Complete and carries the worker's one
  // provenance; the store keeps it on each row, this read takes it from the first. "{}" = none.
  std::string provenance_json = "{}";
  std::vector<StoredMetric> metrics;  // by metric name
};

// The end of one attempt's job process output (store/schema/007_job_logs.sql).
struct JobLog {
  bool stored = false;  // false: none reported yet (the fields below are empty)
  int64_t epoch = 0;
  int32_t attempt = 0;
  std::string text;
  absl::Time stored_at;
};

// What SubmitSweep did with the jobs of a sweep, by job key (the four add up to the jobs).
struct SubmitCounts {
  int64_t created = 0;      // new keys: PENDING jobs created for this sweep
  int64_t reused = 0;       // SUCCEEDED already: the stored result serves this sweep
  int64_t resubmitted = 0;  // FAILED, CANCELED or SKIPPED before: PENDING again
  int64_t shared = 0;       // pending or running for another sweep: run once, for both
};

// What early abort (common/early_abort.h) saved: SKIPPED jobs and their estimated
// worker-seconds (each skipped job counts what its baseline job ran for).
struct EarlyAbortSavings {
  int64_t skipped_jobs = 0;
  double saved_seconds = 0;
};

class JobStore {
 public:
  // Connects to `conninfo` (libpq syntax; PG* environment variables apply) and migrates.
  static StatusOr<std::unique_ptr<JobStore>> Open(const std::string& conninfo,
                                                  const JobStoreOptions& options = {});
  virtual ~JobStore() = default;

  // Idempotent by request_id: a replay returns the original sweep id and changes nothing.
  // Jobs whose key exists are linked to this sweep (ALREADY_EXISTS if their spec differs); a
  // SUCCEEDED one keeps its result; a FAILED, CANCELED or SKIPPED one is resubmitted: PENDING
  // again with attempt 0 (the epoch keeps growing), recorded as a RESUBMIT event naming this
  // sweep and the previous state and error. A replay applies nothing, so it never retries a
  // failed job. Then the early-abort rules (spec_json "early_abort") of every sweep that asks
  // for a job are applied to every artifact of the sweep whose perplexity is already known, and
  // to those with a job another sweep's rule holds (common/early_abort.h PlanEarlyAbort: a job
  // is skipped only when all its sweeps' rules say so): a looser rule (or none) leaves a revived
  // job PENDING and ends another sweep's hold, one its artifact still exceeds skips it again.
  // `counts` (may be null) receives what became of the jobs (all 0 on a replay).
  virtual StatusOr<int64_t> SubmitSweep(const std::string& request_id, const std::string& name,
                                        const std::string& spec_json, int32_t priority,
                                        const std::vector<NewJob>& jobs, absl::Time now,
                                        SubmitCounts* counts = nullptr) = 0;
  // Persists a worker and returns its id (the same id for a known name, whose capabilities and
  // labels are replaced and whose artifacts gain the ones listed). The registry lives in the
  // database, so a restarted coordinator knows every worker without asking it to register again.
  // Sessions: the name's stored session becomes worker.session, unless the name is held by
  // another session (not NULL, not worker.session) that was seen (registered, leased,
  // heartbeated) after now - `live`: then ALREADY_EXISTS naming the holder. `live` 0: never
  // refused.
  virtual StatusOr<int64_t> RegisterWorker(const WorkerInfo& worker, absl::Time now,
                                           absl::Duration live = absl::ZeroDuration()) = 0;
  // NOT_FOUND for an unknown id.
  virtual StatusOr<WorkerInfo> GetWorker(int64_t worker_id) = 0;

  // Leases the best pending job with not_before <= now that fits the capabilities the worker
  // registered (see Capabilities): highest priority, then artifacts the worker holds, then the
  // sweep with the fewest held jobs, then the oldest. nullopt when none fits. NOT_FOUND for an
  // unregistered worker. Concurrent calls are combined: while one lease runs, the calls that
  // arrive wait and are then served together by one LeaseMany (a call alone is one statement,
  // one round trip).
  // `session` must be the one the worker registered under ("" matches a worker registered
  // without one): FAILED_PRECONDITION otherwise, nothing leased and the worker not marked seen,
  // so a holder of the worker token who knows a worker id cannot take that worker's jobs.
  // Idempotent by `request_id` (when not ""): while the job leased under (worker_id,
  // request_id) is still held (LEASED or CANCEL_REQUESTED), the same call answers that job with
  // the same epoch and attempt and renews its lease to now + ttl, instead of leasing another
  // one; the id is stored with the lease, so this survives a coordinator restart. Requests of
  // one coordinator are served one batch after another, so a retry never races its original.
  virtual StatusOr<std::optional<LeasedJob>> Lease(int64_t worker_id, absl::Time now,
                                                   absl::Duration ttl,
                                                   const std::string& request_id = "",
                                                   const std::string& session = "") = 0;
  // Leases for several workers in one transaction: one plan and one candidate scan for all of
  // them instead of one each, the hot path's cost under many workers. Result i is what Lease
  // would have returned for requests[i] called after requests[0..i-1] (the same ranking, with
  // each earlier lease counted in its sweep's held jobs), as long as each choice lies within the
  // candidate windows (beyond them, affinity looks at each worker's 4 most recently gained
  // artifacts, not all of them); errors (an unregistered worker) are per request, except a
  // database failure, which every request gets. Only the chosen rows are locked.
  virtual std::vector<StatusOr<std::optional<LeasedJob>>> LeaseMany(
      const std::vector<LeaseRequest>& requests) = 0;
  // The calls about a leased job below take the caller's `session`: the job must be held by the
  // worker registered under that session ("" matches a worker registered without one), checked
  // with the epoch; otherwise FAILED_PRECONDITION, as for a stale epoch.
  // Renews the lease to now + ttl. FAILED_PRECONDITION when the epoch is no longer current.
  virtual StatusOr<HeartbeatReply> Heartbeat(int64_t job_id, int64_t epoch, absl::Time now,
                                             absl::Duration ttl,
                                             const std::string& session = "") = 0;
  // SUCCEEDED (results written in the same transaction) or, after a cancel request, CANCELED;
  // returns the state the job is in now. A replay with the same epoch after success returns
  // the job's state and writes nothing. A result with a "ppl" metric then applies the early-abort
  // rules to the artifacts it decides (its own, or, for a baseline, those measured against it):
  // in a transaction of its own, so a failure there fails nothing but leaves the hold to expire.
  virtual StatusOr<JobState> Complete(int64_t job_id, int64_t epoch,
                                      const std::vector<JobResultRow>& results, absl::Time now,
                                      const std::string& session = "") = 0;
  // Retryable with attempts left: PENDING with exponential backoff; otherwise FAILED (CANCELED
  // after a cancel request). Returns the state the job is in now (also for a replay). A job that
  // ends FAILED applies the early-abort rules as Complete does (a diverged ppl exceeds them; any
  // other failure releases the holds it kept).
  virtual StatusOr<JobState> Fail(int64_t job_id, int64_t epoch, const std::string& reason,
                                  bool retryable, absl::Time now,
                                  const std::string& session = "") = 0;
  // Treats every lease with deadline < now as a retryable failure; returns how many expired.
  virtual StatusOr<int64_t> ExpireLeases(absl::Time now) = 0;
  // One round trip to the database (`SELECT 1`): OK, or UNAVAILABLE while it cannot be reached.
  virtual Status Ping() = 0;
  // The database's identity (store/schema/004_cluster.sql): random, made once per database.
  virtual StatusOr<std::string> ClusterId() = 0;

  // PENDING -> CANCELED, LEASED -> CANCEL_REQUESTED; jobs another active sweep still needs are
  // kept. Idempotent. Returns the number of jobs changed.
  virtual StatusOr<int64_t> CancelSweep(int64_t sweep_id, const std::string& reason,
                                        absl::Time now) = 0;
  // OK if the job is already canceled or cancel-requested; FAILED_PRECONDITION when finished.
  virtual Status CancelJob(int64_t job_id, const std::string& reason, absl::Time now) = 0;

  virtual StatusOr<SweepInfo> GetSweep(int64_t sweep_id) = 0;
  virtual StatusOr<std::vector<SweepInfo>> ListSweeps() = 0;
  virtual StatusOr<JobInfo> GetJob(int64_t job_id) = 0;
  virtual StatusOr<std::vector<JobInfo>> ListJobs(int64_t sweep_id) = 0;
  virtual StatusOr<std::vector<JobResultRow>> Results(const ResultFilter& filter) = 0;
  virtual StatusOr<std::vector<JobEventRow>> Events(int64_t job_id) = 0;

  // Pages (keyset paging, for listings that must stay bounded whatever the database holds): each
  // page starts past the last id of the page before, so a page costs one index range scan of at
  // most `limit` (>= 1) rows wherever it lies, and rows added meanwhile never shift or repeat
  // one. An empty page is the end.
  // Sweeps with id < before_id (0: from the newest), newest first, with their job counts.
  virtual StatusOr<std::vector<SweepInfo>> ListSweepsPage(int64_t before_id, int32_t limit) = 0;
  // Jobs matching `filter` with id > after_id, by id.
  virtual StatusOr<std::vector<JobInfo>> ListJobsPage(const JobFilter& filter, int64_t after_id,
                                                      int32_t limit) = 0;
  // Jobs of sweep `sweep_id` (0: of every sweep) with id > after_job_id that have stored results,
  // or FAILED with a diverged reason (common/diverged.h), by id, with their spec, provenance
  // and metrics: one statement joining jobs and results (no read per job). `limit` counts jobs.
  virtual StatusOr<std::vector<JobResults>> ResultsPage(int64_t sweep_id, int64_t after_job_id,
                                                        int32_t limit) = 0;
  // Every state (zero included), for metrics.
  virtual StatusOr<std::map<JobState, int64_t>> CountJobsByState() = 0;

  // Stores `text` (valid UTF-8 without NUL bytes: INVALID_ARGUMENT otherwise) as the output of
  // the job's attempt under `epoch`, replacing what an attempt of a lower epoch stored (one of a
  // higher epoch is kept: a late report never hides a newer one). The attempt is the job's
  // current attempt number. NOT_FOUND for an unknown job.
  virtual Status PutJobLog(int64_t job_id, int64_t epoch, const std::string& text,
                           absl::Time now) = 0;
  // NOT_FOUND for an unknown job; stored = false when no output was stored for it.
  virtual StatusOr<JobLog> GetJobLog(int64_t job_id) = 0;
  // Of every job, for metrics.
  virtual StatusOr<EarlyAbortSavings> EarlyAbortTotals() = 0;
  // Makes the early-abort decisions a lost transaction left undone: Complete and Fail decide
  // after their result is stored, in a transaction of their own, so an outage between the two
  // leaves jobs held (PENDING, not_before in the future) although their artifact's result is in.
  // Applies the rules to every artifact with such a held job and a finished job of its own (the
  // coordinator's reaper calls this on each tick). Returns how many jobs it skipped.
  virtual StatusOr<int64_t> DecideHeldEarlyAborts(absl::Time now) = 0;
};

}  // namespace bitsweep::store
