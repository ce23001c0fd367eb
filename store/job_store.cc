#include "store/job_store.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <pqxx/pqxx>
#include <set>

#include "store/migrations.h"
#include "store/pg_status.h"

namespace bitsweep::store {

namespace {

// Times cross the wire as int64 microseconds since the epoch: exact both ways.
std::string Ts(int param) {
  return "('epoch'::timestamptz + ($" + std::to_string(param) +
         "::bigint) * interval '1 microsecond')";
}
std::string Us(const std::string& column) {
  return "(extract(epoch from " + column + ") * 1000000)::bigint";
}
int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

// PostgreSQL array literals for unnest(): the whole batch is one parameter per column.
std::string TextArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}
template <typename T>
std::string NumberArray(const std::vector<T>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    if constexpr (std::is_floating_point_v<T>) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", static_cast<double>(values[i]));
      out += buf;
    } else {
      out += std::to_string(values[i]);
    }
  }
  return out + "}";
}

// Runs `sql` as a prepared statement named after its hash: PostgreSQL plans each distinct
// statement once per connection instead of on every call (planning the lease query costs more
// than running it). pqxx registers an identical definition once and prepares it lazily.
template <typename... Args>
pqxx::result Exec(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  char name[32];
  std::snprintf(name, sizeof(name), "bitsweep_%016zx", std::hash<std::string>{}(sql));
  tx.conn().prepare(name, sql);
  return tx.exec_prepared(name, std::forward<Args>(args)...);
}
template <typename... Args>
pqxx::row Exec1(pqxx::transaction_base& tx, const std::string& sql, Args&&... args) {
  pqxx::result r = Exec(tx, sql, std::forward<Args>(args)...);
  if (r.size() != 1) {
    throw pqxx::unexpected_rows("expected one row, got " + std::to_string(r.size()));
  }
  return r[0];
}

std::string StateName(JobState s) { return std::string(JobStateName(s)); }
std::string EventName(JobEvent e) { return std::string(JobEventName(e)); }

StatusOr<JobState> StateOf(const pqxx::field& f) { return ParseJobState(f.as<std::string>()); }

// The states an SQL statement reports it moved a job between, checked against the transition
// table (the statements encode the table in SQL; this keeps the two from drifting apart).
StatusOr<JobState> CheckedMove(const std::string& what, const pqxx::field& from_field,
                               const pqxx::field& to_field, JobEvent event) {
  ASSIGN_OR_RETURN(JobState from, StateOf(from_field));
  ASSIGN_OR_RETURN(JobState to, StateOf(to_field));
  StatusOr<JobState> want = Apply(from, event);
  if (!want.ok() || *want != to) {
    return absl::InternalError(what + ": SQL moved a job from " + StateName(from) + " to " +
                               StateName(to) + ", which the transition table does not allow");
  }
  return to;
}

const std::string kJobColumns =
    "j.id, j.sweep_id, j.job_key, j.artifact_key, j.spec::text, j.state, j.priority, j.attempt, "
    "j.max_attempts, j.lease_epoch, j.worker_id, " +
    Us("j.lease_deadline") + ", " + Us("j.not_before") +
    ", j.cancel_requested, j.devices, j.memory_gb, j.tp, j.last_error, "
    "coalesce((SELECT w.name FROM workers w WHERE w.id = j.worker_id), '')";

StatusOr<JobInfo> JobFromRow(const pqxx::row& r) {
  JobInfo j;
  j.id = r[0].as<int64_t>();
  j.sweep_id = r[1].as<int64_t>();
  j.job_key = r[2].as<std::string>();
  j.artifact_key = r[3].as<std::string>();
  j.spec_json = r[4].as<std::string>();
  ASSIGN_OR_RETURN(j.state, StateOf(r[5]));
  j.priority = r[6].as<int32_t>();
  j.attempt = r[7].as<int32_t>();
  j.max_attempts = r[8].as<int32_t>();
  j.lease_epoch = r[9].as<int64_t>();
  if (!r[10].is_null()) j.worker_id = r[10].as<int64_t>();
  if (!r[11].is_null()) j.lease_deadline = FromMicros(r[11].as<int64_t>());
  j.not_before = FromMicros(r[12].as<int64_t>());
  j.cancel_requested = r[13].as<bool>();
  j.needs.devices = r[14].as<int32_t>();
  j.needs.memory_gb = r[15].as<double>();
  j.needs.tp = r[16].as<int32_t>();
  j.last_error = r[17].as<std::string>();
  j.worker_name = r[18].as<std::string>();
  return j;
}

// `('PENDING')`: an event's source states as an SQL list literal. Only for the lease query,
// whose partial indexes PostgreSQL matches against literal states, never against parameters;
// the text comes from the transition table, never from a caller.
std::string StateList(JobEvent event) {
  std::string out = "(";
  for (JobState st : SourceStates(event)) {
    if (out.size() > 1) out += ", ";
    out += "'" + std::string(JobStateName(st)) + "'";
  }
  return out + ")";
}

// `CASE col WHEN 'PENDING' THEN 'LEASED' END`: where `event` takes each source, per the table.
std::string DestinationCase(JobEvent event, const std::string& column) {
  std::string out = "CASE " + column;
  for (JobState from : SourceStates(event)) {
    out += " WHEN '" + std::string(JobStateName(from)) + "' THEN '" +
           std::string(JobStateName(*Apply(from, event))) + "'";
  }
  return out + " END";
}

// Candidates: the first kLeaseWindow due, fitting jobs of every sweep (by priority, then age)
// plus the first kAffinityWindow on each artifact the worker holds, each an index range scan
// instead of a sort of every pending job. A row is locked only while a Lease transaction runs
// (then it leaves the pending index), so the window need only exceed the number of concurrent
// Lease transactions (the connection pools of all coordinators) for locked rows never to hide
// a free job; a window that is too small only makes a worker ask again, never double-leases. The
// outer query ranks (priority, held artifact, sweep with the fewest held jobs, age) and locks the
// first row nobody holds: SKIP LOCKED lets concurrent leasers take different rows instead of
// queueing. The worker's capabilities and artifacts come from its workers row (the registry is
// persistent, so a restarted coordinator leases without asking workers to register again).
// $1 now (us), $2 worker id, $3 lease deadline (us).
constexpr int kLeaseWindow = 64;
// Affinity only reorders; it need not see past the first few jobs of each held artifact.
constexpr int kAffinityWindow = 16;
constexpr std::size_t kAnalyzeAfterJobs = 1000;
// The most concurrent Lease calls one LeaseMany serves.
constexpr std::size_t kMaxLeaseBatch = 64;
// LeaseMany's affinity windows cover each worker's most recently gained artifacts only.
constexpr int kBatchAffinityArtifacts = 4;
const std::string& LeaseQuery() {
  static const std::string* query = [] {
    const std::string pending = StateList(JobEvent::kLease);
    const std::string held = StateList(JobEvent::kHeartbeat);
    const std::string fits = " AND c.not_before <= " + Ts(1) +
                             " AND c.devices <= w.devices AND c.memory_gb <= w.memory_gb"
                             " AND c.tp <= w.tp";
    const std::string window = std::to_string(kLeaseWindow);
    return new std::string(
        "WITH w AS (SELECT devices, memory_gb, tp FROM workers WHERE id = $2), "
        "held AS (SELECT sweep_id, count(*) AS n FROM jobs WHERE state IN " +
        held +
        " GROUP BY sweep_id), "
        "cand AS ("
        "  (SELECT x.id FROM w CROSS JOIN sweeps s CROSS JOIN LATERAL ("
        "    SELECT c.id FROM jobs c WHERE c.sweep_id = s.id AND c.state IN " +
        pending + fits + "    ORDER BY c.priority DESC, c.id LIMIT " + window +
        ") x) "
        // UNION ALL, not UNION: = ANY() below ignores repeated ids, while UNION's hash table
        // is sized by the (unanalyzed sweeps: wildly high) row estimate and then walked whole:
        // it was half of LeaseMany's read.
        "  UNION ALL "
        "  (SELECT y.id FROM w CROSS JOIN worker_artifacts a CROSS JOIN LATERAL ("
        "     SELECT c.id FROM jobs c WHERE c.artifact_key = a.artifact_key AND c.state IN " +
        pending + fits + " ORDER BY c.priority DESC, c.id LIMIT " +
        std::to_string(kAffinityWindow) +
        ") y WHERE a.worker_id = $2)), "
        // = ANY(ARRAY(...)) keeps this a primary-key lookup even when the statistics of a
        // freshly loaded jobs table would make the planner scan every pending job.
        "pick AS (SELECT j.id, j.state FROM jobs j LEFT JOIN held h ON h.sweep_id = j.sweep_id "
        "WHERE j.id = ANY(ARRAY(SELECT id FROM cand)) AND j.state IN " +
        pending +
        " AND EXISTS (SELECT 1 FROM w) "
        "ORDER BY j.priority DESC, "
        "  EXISTS (SELECT 1 FROM worker_artifacts a WHERE a.worker_id = $2 "
        "    AND a.artifact_key = j.artifact_key) DESC, "
        "  coalesce(h.n, 0), j.id "
        "LIMIT 1 FOR UPDATE OF j SKIP LOCKED), "
        // The guarded LEASE transition, its job_events row and the worker's liveness, all in
        // this one statement: the lease path is the coordinator's hot path.
        "u AS (UPDATE jobs SET state = " +
        DestinationCase(JobEvent::kLease, "jobs.state") +
        ", lease_epoch = jobs.lease_epoch + 1, attempt = jobs.attempt + 1, worker_id = $2, "
        "lease_deadline = " +
        Ts(3) + ", leased_at = " + Ts(1) + ", renewed_at = " + Ts(1) + ", updated_at = " + Ts(1) +
        " FROM pick WHERE jobs.id = pick.id AND jobs.state IN " + pending +
        " RETURNING jobs.id, pick.state AS from_state, jobs.state AS to_state, "
        "jobs.lease_epoch, jobs.attempt, jobs.job_key, jobs.artifact_key, jobs.spec::text AS "
        "spec), "
        "e AS (INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, "
        "worker_id, reason) SELECT id, " +
        Ts(1) + ", from_state, to_state, '" + std::string(JobEventName(JobEvent::kLease)) +
        "', lease_epoch, $2, 'attempt ' || attempt FROM u), "
        "wk AS (UPDATE workers SET last_heartbeat = " +
        Ts(1) +
        " WHERE id = $2 RETURNING id) "
        "SELECT u.id, u.from_state, u.to_state, u.lease_epoch, u.attempt, u.job_key, "
        "u.artifact_key, u.spec, (SELECT count(*) FROM wk) FROM u "
        "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (SELECT count(*) FROM "
        "wk) "
        "WHERE NOT EXISTS (SELECT 1 FROM u)");
  }();
  return *query;
}

// Complete of a job held under the given epoch, in one statement: the guarded transition, its
// job_events row, the results (when it succeeds) and the worker's artifact, as the transaction
// in Complete() does them step by step. No row: not held under that epoch (the caller then
// finds out why). $1 job id, $2 epoch, $3 now (us), $4..$8 the results' columns.
const std::string& CompleteQuery() {
  static const std::string* query = [] {
    const std::string succeeded = "'" + StateName(JobState::kSucceeded) + "'";
    return new std::string(
        "WITH j AS (SELECT id, state AS from_state, coalesce(worker_id, 0) AS wid, artifact_key "
        "FROM jobs WHERE id = $1 AND lease_epoch = $2 AND state IN " +
        StateList(JobEvent::kComplete) +
        " FOR UPDATE), "
        "u AS (UPDATE jobs SET state = " +
        DestinationCase(JobEvent::kComplete, "j.from_state") + ", updated_at = " + Ts(3) +
        ", finished_at = " + Ts(3) +
        ", lease_deadline = NULL FROM j WHERE jobs.id = j.id "
        "RETURNING jobs.id, j.from_state, jobs.state AS to_state, j.wid, j.artifact_key), "
        "e AS (INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, "
        "worker_id, reason) SELECT id, " +
        Ts(3) + ", from_state, to_state, '" + EventName(JobEvent::kComplete) +
        "', $2, NULLIF(wid, 0::bigint), 'completed by worker ' || wid FROM u), "
        "r AS (INSERT INTO results (job_id, metric, value, stderr, n, provenance, created_at) "
        "SELECT u.id, t.metric, t.value, t.stderr, t.n, t.provenance::json, " +
        Ts(3) +
        " FROM u CROSS JOIN unnest($4::text[], $5::float8[], $6::float8[], $7::bigint[], "
        "$8::text[]) AS t(metric, value, stderr, n, provenance) WHERE u.to_state = " +
        succeeded +
        "), "
        // The worker now holds this job's checkpoint: later leases prefer it for jobs on it.
        "wk AS (INSERT INTO worker_artifacts (worker_id, artifact_key) SELECT wid, artifact_key "
        "FROM u WHERE u.wid <> 0 AND u.to_state = " +
        succeeded +
        " AND u.artifact_key <> '' ON CONFLICT DO NOTHING) "
        "SELECT from_state, to_state FROM u");
  }();
  return *query;
}

// LeaseMany's read, one statement returning four kinds of rows: 0 the batch's workers (id,
// devices, memory_gb, tp), 1 the candidates (id, sweep_id, priority, artifact_key, devices,
// memory_gb, tp, not_before, state): LeaseQuery's windows for every distinct capability set and
// for the $5 artifacts each worker gained last (a worker that ran hundreds of jobs holds hundreds
// of artifacts, and a window for each would cost more than the rest of the batch), 3 which of
// the candidates' artifacts each worker holds (worker id, artifact_key: all the ranking needs),
// and 2 the held jobs per sweep (sweep_id, n). $1 now (us; the batch's latest, each request
// checks its own), $2 worker ids, $3 sweep window, $4 artifact window.
const std::string& LeaseSnapshotQuery() {
  static const std::string* query = [] {
    const std::string pending = StateList(JobEvent::kLease);
    const std::string fits = " AND c.not_before <= " + Ts(1) +
                             " AND c.devices <= w.devices AND c.memory_gb <= w.memory_gb"
                             " AND c.tp <= w.tp";
    return new std::string(
        "WITH ws AS (SELECT id, devices, memory_gb, tp FROM workers "
        "  WHERE id = ANY($2::bigint[])), "
        "caps AS (SELECT DISTINCT devices, memory_gb, tp FROM ws), "
        "arts AS (SELECT DISTINCT a.key, ws.devices, ws.memory_gb, ws.tp FROM ws "
        "  CROSS JOIN LATERAL (SELECT artifact_key AS key FROM worker_artifacts "
        "    WHERE worker_id = ws.id ORDER BY seq DESC LIMIT $5) a), "
        "cand AS ("
        "  (SELECT x.id FROM caps w CROSS JOIN sweeps s CROSS JOIN LATERAL ("
        "    SELECT c.id FROM jobs c WHERE c.sweep_id = s.id AND c.state IN " +
        pending + fits +
        "    ORDER BY c.priority DESC, c.id LIMIT $3) x) "
        "  UNION ALL "  // as in LeaseQuery
        "  (SELECT y.id FROM arts w CROSS JOIN LATERAL ("
        "     SELECT c.id FROM jobs c WHERE c.artifact_key = w.key AND c.state IN " +
        pending + fits + " ORDER BY c.priority DESC, c.id LIMIT $4) y)), " +
        "cj AS (SELECT j.id, j.sweep_id, j.priority, j.artifact_key, j.devices, j.memory_gb, "
        "  j.tp, j.not_before, j.state FROM jobs j "
        "  WHERE j.id = ANY(ARRAY(SELECT id FROM cand)) AND j.state IN " +
        pending +
        ") "
        "SELECT 0, id, NULL::bigint, NULL::int, NULL::text, devices::int, memory_gb::float8, "
        "tp::int, NULL::bigint, NULL::text, NULL::bigint FROM ws "
        "UNION ALL "
        "SELECT 1, id, sweep_id, priority::int, artifact_key, devices::int, memory_gb::float8, "
        "tp::int, " +
        Us("not_before") +
        ", state, NULL::bigint FROM cj "
        "UNION ALL "
        "SELECT 3, worker_id, NULL, NULL, artifact_key, NULL, NULL, NULL, NULL, NULL, NULL "
        "FROM worker_artifacts WHERE worker_id = ANY($2::bigint[]) AND artifact_key = "
        "ANY(ARRAY(SELECT DISTINCT artifact_key FROM cj)) "
        "UNION ALL "
        "SELECT 2, NULL, sweep_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, count(*) "
        "FROM jobs WHERE state IN " +
        StateList(JobEvent::kHeartbeat) + " GROUP BY sweep_id");
  }();
  return *query;
}

// LeaseMany's transitions in one statement: locks the picks that are still pending and that
// nobody else holds (SKIP LOCKED), LEASEs them with their job_events rows, and records the
// liveness of the batch's workers. A pick not returned was taken by someone else. $1 jobs,
// $2 their workers, $3 deadlines (us), $4 nows (us), $5 workers alive, $6 their nows (us).
const std::string& LeaseApplyQuery() {
  static const std::string* query = [] {
    const std::string pending = StateList(JobEvent::kLease);
    auto ts = [](const std::string& col) {
      return "('epoch'::timestamptz + (" + col + ") * interval '1 microsecond')";
    };
    return new std::string(
        "WITH a AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
        "$4::bigint[]) AS a(job_id, worker_id, deadline, now)), "
        "lk AS (SELECT id, state FROM jobs WHERE id = ANY($1::bigint[]) AND state IN " +
        pending +
        " FOR UPDATE SKIP LOCKED), "
        "u AS (UPDATE jobs SET state = " +
        DestinationCase(JobEvent::kLease, "jobs.state") +
        ", lease_epoch = jobs.lease_epoch + 1, attempt = jobs.attempt + 1, "
        "worker_id = a.worker_id, lease_deadline = " +
        ts("a.deadline") + ", leased_at = " + ts("a.now") + ", renewed_at = " + ts("a.now") +
        ", updated_at = " + ts("a.now") +
        " FROM a JOIN lk ON lk.id = a.job_id WHERE jobs.id = a.job_id "
        "RETURNING jobs.id, lk.state AS from_state, jobs.state AS to_state, jobs.lease_epoch, "
        "jobs.attempt, jobs.job_key, jobs.artifact_key, jobs.spec::text AS spec, a.worker_id, "
        "a.now), "
        "e AS (INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, "
        "worker_id, reason) SELECT id, " +
        ts("now") + ", from_state, to_state, '" + std::string(JobEventName(JobEvent::kLease)) +
        "', lease_epoch, worker_id, 'attempt ' || attempt FROM u), "
        "wk AS (UPDATE workers SET last_heartbeat = " +
        ts("l.now") +
        " FROM unnest($5::bigint[], $6::bigint[]) AS l(id, now) WHERE workers.id = l.id) "
        "SELECT id, from_state, to_state, lease_epoch, attempt, job_key, artifact_key, spec "
        "FROM u");
  }();
  return *query;
}

// A bounded, first-come-first-served pool: callers beyond max_connections queue in arrival
// order (a plain condition variable lets some waiters starve, which shows as a lease p99 far
// above the p50). Connections that broke are dropped, so the next caller reconnects.
class ConnectionPool {
 public:
  ConnectionPool(std::string conninfo, int max) : conninfo_(std::move(conninfo)), max_(max) {}

  // Throws what pqxx::connection throws (broken_connection when the server is down).
  std::unique_ptr<pqxx::connection> Acquire() {
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (waiters_.empty() && !idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      if (waiters_.empty() && open_ < max_) {
        ++open_;
      } else {
        Waiter me;
        waiters_.push_back(&me);
        me.cv.wait(lock, [&] { return me.ready; });
        if (me.conn != nullptr) return std::move(me.conn);
        // Handed an empty slot (its connection broke): open a new one in it.
      }
    }
    try {
      auto c = std::make_unique<pqxx::connection>(conninfo_);
      // The store runs short OLTP statements: JIT compiling one costs hundreds of milliseconds
      // (the lease query's estimate over an unanalyzed sweeps table crosses jit_above_cost) and
      // never pays off.
      c->set_variable("jit", "off");
      return c;
    } catch (...) {
      Release(nullptr);
      throw;
    }
  }

  // nullptr (or a closed connection) gives the slot back without keeping the connection.
  void Release(std::unique_ptr<pqxx::connection> c) {
    std::lock_guard<std::mutex> lock(mu_);
    if (c != nullptr && !c->is_open()) c.reset();
    if (!waiters_.empty()) {
      Waiter* next = waiters_.front();
      waiters_.pop_front();
      next->conn = std::move(c);
      next->ready = true;
      next->cv.notify_one();
    } else if (c != nullptr) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
  }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool ready = false;
    std::unique_ptr<pqxx::connection> conn;
  };
  const std::string conninfo_;
  const int max_;
  std::mutex mu_;
  std::deque<Waiter*> waiters_;                          // guarded by mu_
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int open_ = 0;                                         // guarded by mu_, idle or lent
};

class PgJobStore final : public JobStore {
 public:
  PgJobStore(const std::string& conninfo, const JobStoreOptions& options)
      : options_(options), pool_(conninfo, options.max_connections) {}

  StatusOr<int64_t> SubmitSweep(const std::string& request_id, const std::string& name,
                                const std::string& spec_json, int32_t priority,
                                const std::vector<NewJob>& jobs, absl::Time now) override;
  StatusOr<int64_t> RegisterWorker(const WorkerInfo& worker, absl::Time now) override;
  StatusOr<WorkerInfo> GetWorker(int64_t worker_id) override;
  StatusOr<std::optional<LeasedJob>> Lease(int64_t worker_id, absl::Time now,
                                           absl::Duration ttl) override;
  std::vector<StatusOr<std::optional<LeasedJob>>> LeaseMany(
      const std::vector<LeaseRequest>& requests) override;
  StatusOr<HeartbeatReply> Heartbeat(int64_t job_id, int64_t epoch, absl::Time now,
                                     absl::Duration ttl) override;
  StatusOr<JobState> Complete(int64_t job_id, int64_t epoch,
                              const std::vector<JobResultRow>& results, absl::Time now) override;
  StatusOr<JobState> Fail(int64_t job_id, int64_t epoch, const std::string& reason, bool retryable,
                          absl::Time now) override;
  StatusOr<int64_t> ExpireLeases(absl::Time now) override;
  StatusOr<int64_t> CancelSweep(int64_t sweep_id, const std::string& reason,
                                absl::Time now) override;
  Status CancelJob(int64_t job_id, const std::string& reason, absl::Time now) override;
  StatusOr<SweepInfo> GetSweep(int64_t sweep_id) override;
  StatusOr<std::vector<SweepInfo>> ListSweeps() override;
  StatusOr<JobInfo> GetJob(int64_t job_id) override;
  StatusOr<std::vector<JobInfo>> ListJobs(int64_t sweep_id) override;
  StatusOr<std::vector<JobResultRow>> Results(const ResultFilter& filter) override;
  StatusOr<std::vector<JobEventRow>> Events(int64_t job_id) override;
  StatusOr<std::map<JobState, int64_t>> CountJobsByState() override;

 private:
  // kTransaction: `body` runs in one transaction (BEGIN ... COMMIT), committed when it returns
  // OK, rolled back otherwise. kOneStatement: `body` runs one statement (or only reads) in
  // autocommit, which PostgreSQL makes atomic on its own: two round trips fewer on the hot paths
  // (Lease, Heartbeat, GetJob). Serialization failures and deadlocks are retried a few times,
  // then ABORTED (P7).
  enum class Mode { kTransaction, kOneStatement };
  Status Transact(const std::string& what,
                  const std::function<Status(pqxx::transaction_base&)>& body,
                  Mode mode = Mode::kTransaction);

  // The row of a job locked for update, with what every transition needs.
  struct Locked {
    JobState state;
    int64_t epoch;
    int32_t attempt, max_attempts;
    int64_t worker_id;  // 0: none
    std::string artifact_key;
    bool worker_holds_artifact;
  };
  static StatusOr<Locked> LockJob(pqxx::transaction_base& tx, int64_t job_id);
  // Moves a locked job along `event` (guarded by its source states and epoch) and records it.
  // `set_sql` adds assignments using $1 = now (us), $2 = not_before (us), $3 = reason.
  StatusOr<JobState> Transition(pqxx::transaction_base& tx, int64_t job_id, const Locked& job,
                                JobEvent event, absl::Time now, const std::string& set_sql,
                                absl::Time not_before, const std::string& reason);
  // Lease gone: NOT_FOUND, stale epoch or wrong state -> FAILED_PRECONDITION.
  static Status Fenced(const std::string& what, int64_t job_id, int64_t epoch, const Locked& job);
  // True when an event of `kinds` was already recorded for (job, epoch): a replayed call.
  static bool AlreadyApplied(pqxx::transaction_base& tx, int64_t job_id, int64_t epoch,
                             const std::vector<JobEvent>& kinds);
  absl::Duration Backoff(int32_t attempt) const;

  // The single-statement lease (LeaseQuery).
  StatusOr<std::optional<LeasedJob>> LeaseOne(int64_t worker_id, absl::Time now,
                                              absl::Duration ttl);

  const JobStoreOptions options_;
  ConnectionPool pool_;

  // Lease calls waiting to be served; one of them at a time (the leader) serves the queue.
  struct LeaseCall {
    LeaseRequest request;
    StatusOr<std::optional<LeasedJob>> result;
    bool done = false;
    std::condition_variable cv;  // woken when done, or when it is to lead the next batch
  };
  std::mutex lease_mu_;
  std::deque<LeaseCall*> lease_queue_;  // guarded by lease_mu_
  bool lease_leader_ = false;           // guarded by lease_mu_
};

Status PgJobStore::Transact(const std::string& what,
                            const std::function<Status(pqxx::transaction_base&)>& body, Mode mode) {
  constexpr int kMaxTries = 5;
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<pqxx::connection> conn;
    bool acquired = false;  // Acquire() gives its slot back itself when connecting fails
    // A connection in an unknown state is never reused.
    auto give_back = [&](bool keep) {
      if (acquired) pool_.Release(keep ? std::move(conn) : nullptr);
      acquired = false;
    };
    try {
      conn = pool_.Acquire();
      acquired = true;
      Status st;
      if (mode == Mode::kOneStatement) {
        pqxx::nontransaction tx(*conn);
        st = body(tx);
      } else {
        pqxx::work tx(*conn);
        st = body(tx);
        if (st.ok()) {
          tx.commit();
        } else {
          tx.abort();
        }
      }
      give_back(true);
      return st;
    } catch (const pqxx::transaction_rollback&) {
      give_back(true);
      if (attempt < kMaxTries) continue;
      return StatusFromCurrentException(what);
    } catch (const pqxx::in_doubt_error&) {
      give_back(false);  // the commit may have landed: only the caller may retry
      return StatusFromCurrentException(what);
    } catch (const pqxx::broken_connection&) {
      give_back(false);
      // Before COMMIT nothing was committed, so one retry on a fresh connection is safe; it
      // turns a pooled connection that died with a server restart into a reconnect. (An
      // autocommit statement may have landed: Heartbeat and reads repeat harmlessly, and a
      // repeated Lease at worst leaves one job leased to nobody until its lease expires.)
      if (attempt == 1) continue;
      return StatusFromCurrentException(what);
    } catch (...) {
      give_back(!CurrentExceptionBreaksConnection());
      return StatusFromCurrentException(what);
    }
  }
}

absl::Duration PgJobStore::Backoff(int32_t attempt) const {
  absl::Duration d = options_.backoff_base;
  for (int i = 1; i < attempt && d < options_.backoff_max; ++i) d *= 2;
  return std::min(d, options_.backoff_max);
}

StatusOr<PgJobStore::Locked> PgJobStore::LockJob(pqxx::transaction_base& tx, int64_t job_id) {
  pqxx::result r =
      Exec(tx,
           "SELECT j.state, j.lease_epoch, j.attempt, j.max_attempts, coalesce(j.worker_id, 0), "
           "j.artifact_key, EXISTS (SELECT 1 FROM worker_artifacts a WHERE a.worker_id = "
           "j.worker_id AND a.artifact_key = j.artifact_key) "
           "FROM jobs j WHERE j.id = $1 FOR UPDATE OF j",
           job_id);
  if (r.empty()) return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
  Locked l;
  ASSIGN_OR_RETURN(l.state, StateOf(r[0][0]));
  l.epoch = r[0][1].as<int64_t>();
  l.attempt = r[0][2].as<int32_t>();
  l.max_attempts = r[0][3].as<int32_t>();
  l.worker_id = r[0][4].as<int64_t>();
  l.artifact_key = r[0][5].as<std::string>();
  l.worker_holds_artifact = r[0][6].as<bool>();
  return l;
}

StatusOr<JobState> PgJobStore::Transition(pqxx::transaction_base& tx, int64_t job_id,
                                          const Locked& job, JobEvent event, absl::Time now,
                                          const std::string& set_sql, absl::Time not_before,
                                          const std::string& reason) {
  ASSIGN_OR_RETURN(JobState to, Apply(job.state, event));
  // The guarded update and its job_events row in one statement (one round trip per change).
  pqxx::result r =
      Exec(tx,
           "WITH u AS (UPDATE jobs SET state = $4, updated_at = " + Ts(1) + set_sql +
               " WHERE id = $5 AND lease_epoch = $6 AND state = ANY($7::text[]) RETURNING id) "
               "INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, worker_id, "
               "reason) SELECT u.id, " +
               Ts(1) +
               ", $8, $4, $9, $6, NULLIF($10, 0::bigint), $3 FROM u "
               // Types $2 when set_sql does not use it.
               "WHERE $2::bigint IS NOT NULL RETURNING job_id",
           Micros(now), Micros(not_before), reason, StateName(to), job_id, job.epoch,
           SourceStatesArray(event), StateName(job.state), EventName(event), job.worker_id);
  if (r.size() != 1) {
    return absl::InternalError("job " + std::to_string(job_id) + ": " + EventName(event) +
                               " guard matched no row although the row was locked");
  }
  return to;
}

Status PgJobStore::Fenced(const std::string& what, int64_t job_id, int64_t epoch,
                          const Locked& job) {
  return absl::FailedPreconditionError(what + ": job " + std::to_string(job_id) +
                                       " is not held under lease epoch " + std::to_string(epoch) +
                                       " (current epoch " + std::to_string(job.epoch) + ", state " +
                                       StateName(job.state) + ")");
}

bool PgJobStore::AlreadyApplied(pqxx::transaction_base& tx, int64_t job_id, int64_t epoch,
                                const std::vector<JobEvent>& kinds) {
  std::vector<std::string> names;
  for (JobEvent e : kinds) names.push_back(EventName(e));
  return !Exec(tx,
               "SELECT 1 FROM job_events WHERE job_id = $1 AND epoch = $2 AND "
               "event = ANY($3::text[]) LIMIT 1",
               job_id, epoch, TextArray(names))
              .empty();
}

StatusOr<int64_t> PgJobStore::SubmitSweep(const std::string& request_id, const std::string& name,
                                          const std::string& spec_json, int32_t priority,
                                          const std::vector<NewJob>& jobs, absl::Time now) {
  if (request_id.empty()) return absl::InvalidArgumentError("SubmitSweep: request_id is empty");
  std::vector<std::string> keys, artifacts, specs;
  std::vector<int32_t> priorities, max_attempts, devices, tps;
  std::vector<double> memory;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const NewJob& j = jobs[i];
    const std::string where = "SubmitSweep: jobs[" + std::to_string(i) + "] ";
    if (j.job_key.empty()) return absl::InvalidArgumentError(where + "job_key is empty");
    if (!seen.insert(j.job_key).second) {
      return absl::InvalidArgumentError(where + "job_key '" + j.job_key + "' repeats");
    }
    if (j.max_attempts < 1) return absl::InvalidArgumentError(where + "max_attempts < 1");
    if (j.needs.devices < 0 || j.needs.memory_gb < 0 || j.needs.tp < 1) {
      return absl::InvalidArgumentError(where + "needs: devices/memory_gb < 0 or tp < 1");
    }
    keys.push_back(j.job_key);
    artifacts.push_back(j.artifact_key);
    specs.push_back(j.spec_json);
    priorities.push_back(j.priority);
    max_attempts.push_back(j.max_attempts);
    devices.push_back(j.needs.devices);
    memory.push_back(j.needs.memory_gb);
    tps.push_back(j.needs.tp);
  }
  const std::string keys_array = TextArray(keys), specs_array = TextArray(specs);
  int64_t sweep_id = 0;
  RETURN_IF_ERROR(Transact("SubmitSweep " + request_id, [&](pqxx::transaction_base& tx) -> Status {
    pqxx::result r = Exec(tx,
                          "INSERT INTO sweeps (request_id, name, spec, priority, created_at) "
                          "VALUES ($1, $2, $3::json, $4, " +
                              Ts(5) + ") ON CONFLICT (request_id) DO NOTHING RETURNING id",
                          request_id, name, spec_json, priority, Micros(now));
    if (r.empty()) {  // a replay: answer with the original sweep
      sweep_id =
          Exec1(tx, "SELECT id FROM sweeps WHERE request_id = $1", request_id)[0].as<int64_t>();
      return absl::OkStatus();
    }
    sweep_id = r[0][0].as<int64_t>();
    if (jobs.empty()) return absl::OkStatus();
    // One statement per batch (10,000 jobs in one round trip); SUBMIT events for new rows only.
    Exec(tx,
         "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
         "$5::int[], $6::int[], $7::float8[], $8::int[]) AS t(job_key, artifact_key, spec, "
         "priority, max_attempts, devices, memory_gb, tp)), "
         "ins AS (INSERT INTO jobs (sweep_id, job_key, artifact_key, spec, state, priority, "
         "max_attempts, devices, memory_gb, tp, not_before, created_at, updated_at) "
         "SELECT $9, job_key, artifact_key, spec::json, $10, priority, max_attempts, devices, "
         "memory_gb, tp, " +
             Ts(11) + ", " + Ts(11) + ", " + Ts(11) +
             " FROM input ON CONFLICT (job_key) DO NOTHING RETURNING id) "
             "INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, reason) "
             "SELECT id, " +
             Ts(11) + ", NULL, $10, $12, 0, $13 FROM ins",
         keys_array, TextArray(artifacts), specs_array, NumberArray(priorities),
         NumberArray(max_attempts), NumberArray(devices), NumberArray(memory), NumberArray(tps),
         sweep_id, StateName(kInitialJobState), Micros(now), EventName(JobEvent::kSubmit),
         "sweep " + std::to_string(sweep_id));
    if (jobs.size() >= kAnalyzeAfterJobs) {
      // A large batch changes the table's shape: refresh the planner's statistics now rather
      // than when autovacuum gets to it, so the lease query keeps its primary-key plan.
      tx.exec("ANALYZE jobs");
    }
    pqxx::result conflict =
        Exec(tx,
             "SELECT j.job_key FROM jobs j JOIN unnest($1::text[], $2::text[]) AS t(job_key, spec) "
             "ON j.job_key = t.job_key WHERE j.spec::text <> t.spec LIMIT 1",
             keys_array, specs_array);
    if (!conflict.empty()) {
      return absl::AlreadyExistsError("SubmitSweep " + request_id + ": job_key '" +
                                      conflict[0][0].as<std::string>() +
                                      "' already exists with a different spec");
    }
    Exec(tx,
         "INSERT INTO sweep_jobs (sweep_id, job_id) SELECT $1, id FROM jobs "
         "WHERE job_key = ANY($2::text[]) ON CONFLICT DO NOTHING",
         sweep_id, keys_array);
    // A new sweep asking for a job that ended CANCELED or FAILED runs it again (kResubmit: fresh
    // attempts, and it counts toward this sweep's fairness); a SUCCEEDED job keeps its result,
    // which this sweep sees. A replay returned above, before this point, so it retries nothing.
    pqxx::result revive = Exec(tx,
                               "SELECT id, last_error FROM jobs WHERE job_key = ANY($1::text[]) "
                               "AND state = ANY($2::text[]) ORDER BY id",
                               keys_array, SourceStatesArray(JobEvent::kResubmit));
    for (const pqxx::row& row : revive) {
      const int64_t job_id = row[0].as<int64_t>();
      ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
      if (!Apply(job.state, JobEvent::kResubmit).ok()) continue;  // moved on since the scan
      std::string reason =
          "resubmitted by sweep " + std::to_string(sweep_id) + " (was " + StateName(job.state);
      const std::string last_error = row[1].as<std::string>();
      if (!last_error.empty()) reason += ": " + last_error;
      reason += ")";
      RETURN_IF_ERROR(Transition(tx, job_id, job, JobEvent::kResubmit, now,
                                 ", not_before = " + Ts(2) +
                                     ", attempt = 0, cancel_requested = false, "
                                     "finished_at = NULL, worker_id = NULL, last_error = ''",
                                 now, reason)
                          .status());
      Exec(tx, "UPDATE jobs SET sweep_id = $1 WHERE id = $2", sweep_id, job_id);
    }
    return absl::OkStatus();
  }));
  return sweep_id;
}

StatusOr<int64_t> PgJobStore::RegisterWorker(const WorkerInfo& worker, absl::Time now) {
  if (worker.name.empty()) return absl::InvalidArgumentError("RegisterWorker: name is empty");
  const Capabilities& c = worker.capabilities;
  if (c.devices < 0) return absl::InvalidArgumentError("RegisterWorker: devices < 0");
  if (!(c.memory_gb >= 0)) return absl::InvalidArgumentError("RegisterWorker: memory_gb < 0");
  if (c.tp < 1) return absl::InvalidArgumentError("RegisterWorker: tp < 1");
  int64_t id = 0;
  RETURN_IF_ERROR(
      Transact("RegisterWorker " + worker.name, [&](pqxx::transaction_base& tx) -> Status {
        id =
            Exec1(tx,
                  "WITH w AS (INSERT INTO workers (name, devices, memory_gb, tp, labels, "
                  "registered_at, last_heartbeat) VALUES ($1, $2, $3, $4, $5::json, " +
                      Ts(7) + ", " + Ts(7) +
                      ") ON CONFLICT (name) DO UPDATE SET devices = EXCLUDED.devices, "
                      "memory_gb = EXCLUDED.memory_gb, tp = EXCLUDED.tp, labels = EXCLUDED.labels, "
                      "last_heartbeat = EXCLUDED.last_heartbeat RETURNING id), "
                      // What it reports now, added to what it was seen completing before.
                      "a AS (INSERT INTO worker_artifacts (worker_id, artifact_key) "
                      "SELECT w.id, t.key FROM w CROSS JOIN unnest($6::text[]) WITH ORDINALITY "
                      "AS t(key, n) WHERE t.key <> '' ORDER BY t.n ON CONFLICT DO NOTHING) "
                      "SELECT id FROM w",
                  worker.name, worker.capabilities.devices, worker.capabilities.memory_gb,
                  worker.capabilities.tp, worker.labels_json, TextArray(worker.artifacts),
                  Micros(now))[0]
                .as<int64_t>();
        return absl::OkStatus();
      }));
  return id;
}

StatusOr<WorkerInfo> PgJobStore::GetWorker(int64_t worker_id) {
  WorkerInfo w;
  RETURN_IF_ERROR(Transact(
      "GetWorker",
      [&](pqxx::transaction_base& tx) -> Status {
        // One row per artifact (or one with NULL), in the order gained. Rows, not an array:
        // pqxx 6's array parser splits an unquoted element at ';', which every artifact key
        // (JobSpec::ArtifactKey) contains.
        pqxx::result r = Exec(tx,
                              "SELECT w.id, w.name, w.devices, w.memory_gb, w.tp, w.labels::text, "
                              "a.artifact_key, " +
                                  Us("w.last_heartbeat") +
                                  " FROM workers w LEFT JOIN worker_artifacts a ON a.worker_id = "
                                  "w.id WHERE w.id = $1 ORDER BY a.seq",
                              worker_id);
        if (r.empty()) {
          return absl::NotFoundError("worker " + std::to_string(worker_id) + " is not registered");
        }
        w.id = r[0][0].as<int64_t>();
        w.name = r[0][1].as<std::string>();
        w.capabilities.devices = r[0][2].as<int32_t>();
        w.capabilities.memory_gb = r[0][3].as<double>();
        w.capabilities.tp = r[0][4].as<int32_t>();
        w.labels_json = r[0][5].as<std::string>();
        w.artifacts.clear();
        for (const pqxx::row& row : r) {
          if (!row[6].is_null()) w.artifacts.push_back(row[6].as<std::string>());
        }
        w.last_heartbeat = FromMicros(r[0][7].as<int64_t>());
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return w;
}

// Flat combining: the caller that finds no leader becomes it and serves everything queued (up
// to kMaxLeaseBatch) with one LeaseMany, while later callers queue behind it. Leases in a
// process never contend with each other for rows, and under load one statement plans and scans
// candidates for a whole batch.
StatusOr<std::optional<LeasedJob>> PgJobStore::Lease(int64_t worker_id, absl::Time now,
                                                     absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("Lease: ttl <= 0");
  LeaseCall me{{worker_id, now, ttl}, std::optional<LeasedJob>(), false, {}};
  std::unique_lock<std::mutex> lock(lease_mu_);
  lease_queue_.push_back(&me);
  while (!me.done) {
    if (lease_leader_) {
      me.cv.wait(lock);
      continue;
    }
    lease_leader_ = true;
    std::vector<LeaseCall*> batch;
    while (!lease_queue_.empty() && batch.size() < kMaxLeaseBatch) {
      batch.push_back(lease_queue_.front());
      lease_queue_.pop_front();
    }
    lock.unlock();
    // Nothing may escape between here and the hand-over below: a leader that left by an
    // exception would leave every later Lease waiting for ever.
    try {
      if (batch.size() == 1) {
        const LeaseRequest& r = batch[0]->request;
        batch[0]->result = LeaseOne(r.worker_id, r.now, r.ttl);
      } else {
        std::vector<LeaseRequest> requests;
        for (const LeaseCall* c : batch) requests.push_back(c->request);
        std::vector<StatusOr<std::optional<LeasedJob>>> results = LeaseMany(requests);
        for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results[i]);
      }
    } catch (...) {
      const Status st = StatusFromCurrentException("Lease");
      for (LeaseCall* c : batch) c->result = st;
    }
    lock.lock();
    for (LeaseCall* c : batch) {
      c->done = true;
      if (c != &me) c->cv.notify_one();
    }
    lease_leader_ = false;
    // The oldest waiting call leads next (only it is woken, not every waiter).
    if (!lease_queue_.empty()) lease_queue_.front()->cv.notify_one();
  }
  return std::move(me.result);
}

StatusOr<std::optional<LeasedJob>> PgJobStore::LeaseOne(int64_t worker_id, absl::Time now,
                                                        absl::Duration ttl) {
  std::optional<LeasedJob> leased;
  RETURN_IF_ERROR(Transact(
      "Lease",
      [&](pqxx::transaction_base& tx) -> Status {
        leased.reset();
        pqxx::result r = Exec(tx, LeaseQuery(), Micros(now), worker_id, Micros(now + ttl));
        if (r.size() != 1) return absl::InternalError("Lease: expected one row");
        if (r[0][8].as<int64_t>() == 0) {
          return absl::NotFoundError("Lease: worker " + std::to_string(worker_id) +
                                     " is not registered");
        }
        if (r[0][0].is_null()) return absl::OkStatus();
        RETURN_IF_ERROR(CheckedMove("Lease", r[0][1], r[0][2], JobEvent::kLease).status());
        LeasedJob l;
        l.job_id = r[0][0].as<int64_t>();
        l.epoch = r[0][3].as<int64_t>();
        l.attempt = r[0][4].as<int32_t>();
        l.job_key = r[0][5].as<std::string>();
        l.artifact_key = r[0][6].as<std::string>();
        l.spec_json = r[0][7].as<std::string>();
        l.deadline = FromMicros(Micros(now + ttl));
        leased = std::move(l);
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return leased;
}

std::vector<StatusOr<std::optional<LeasedJob>>> PgJobStore::LeaseMany(
    const std::vector<LeaseRequest>& requests) {
  std::vector<StatusOr<std::optional<LeasedJob>>> results(requests.size(),
                                                          std::optional<LeasedJob>());
  std::vector<int64_t> ids;
  absl::Time latest = absl::InfinitePast();
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (requests[i].ttl <= absl::ZeroDuration()) {
      results[i] = absl::InvalidArgumentError("Lease: ttl <= 0");
      continue;
    }
    ids.push_back(requests[i].worker_id);
    latest = std::max(latest, requests[i].now);
  }
  if (ids.empty()) return results;
  auto fail_open = [&](const Status& st) {  // every request not answered yet gets `st`
    for (auto& r : results) {
      if (r.ok() && !r->has_value()) r = st;
    }
    return results;
  };
  struct Worker {
    int32_t devices;
    double memory_gb;
    int32_t tp;
  };
  struct Candidate {
    int64_t id, sweep_id;
    int32_t priority;
    std::string artifact_key;
    int32_t devices;
    double memory_gb;
    int32_t tp;
    absl::Time not_before;
    std::string state;
  };
  // 1. One read: the workers, every request's candidate windows (later requests see earlier
  //    ones' windows minus what they took, so the windows grow by the batch size), and the held
  //    jobs per sweep. Nothing is locked yet.
  std::map<int64_t, Worker> workers;
  // worker -> the artifacts it holds among the candidates' (all the ranking needs of them)
  std::map<int64_t, std::set<std::string>> artifacts_of;
  std::vector<Candidate> cands;
  std::map<int64_t, int64_t> held_before;  // sweep -> held jobs, as the single lease ranks them
  const int64_t extra = static_cast<int64_t>(ids.size());
  Status st = Transact(
      "Lease",
      [&](pqxx::transaction_base& tx) -> Status {
        workers.clear();
        artifacts_of.clear();
        cands.clear();
        held_before.clear();
        for (const pqxx::row& r :
             Exec(tx, LeaseSnapshotQuery(), Micros(latest), NumberArray(ids), kLeaseWindow + extra,
                  kAffinityWindow + extra, kBatchAffinityArtifacts)) {
          const int kind = r[0].as<int>();
          if (kind == 0) {
            Worker& w = workers[r[1].as<int64_t>()];
            w.devices = r[5].as<int32_t>();
            w.memory_gb = r[6].as<double>();
            w.tp = r[7].as<int32_t>();
          } else if (kind == 3) {
            artifacts_of[r[1].as<int64_t>()].insert(r[4].as<std::string>());
          } else if (kind == 1) {
            cands.push_back({r[1].as<int64_t>(), r[2].as<int64_t>(), r[3].as<int32_t>(),
                             r[4].as<std::string>(), r[5].as<int32_t>(), r[6].as<double>(),
                             r[7].as<int32_t>(), FromMicros(r[8].as<int64_t>()),
                             r[9].as<std::string>()});
          } else {
            held_before[r[2].as<int64_t>()] = r[10].as<int64_t>();
          }
        }
        return absl::OkStatus();
      },
      Mode::kOneStatement);
  if (!st.ok()) return fail_open(st);

  std::vector<int64_t> live_workers, live_nows;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (!results[i].ok()) continue;
    if (!workers.count(requests[i].worker_id)) {
      results[i] = absl::NotFoundError("Lease: worker " + std::to_string(requests[i].worker_id) +
                                       " is not registered");
      continue;
    }
    // A worker asking twice is alive as of its later call, as consecutive Leases leave it.
    auto seen = std::find(live_workers.begin(), live_workers.end(), requests[i].worker_id);
    if (seen == live_workers.end()) {
      live_workers.push_back(requests[i].worker_id);
      live_nows.push_back(Micros(requests[i].now));
    } else {
      live_nows[static_cast<std::size_t>(seen - live_workers.begin())] = Micros(requests[i].now);
    }
  }

  // 2. Each request in order takes its best fitting, due candidate: priority, a held artifact,
  //    the sweep with the fewest held jobs, age (LeaseQuery's ORDER BY), counting earlier picks.
  //    One statement then locks (SKIP LOCKED) and leases the picks and records the workers'
  //    liveness. A pick someone else took meanwhile (another coordinator, a cancel) is dropped
  //    and the requests still open choose again around it.
  std::vector<const Candidate*> leased(requests.size(), nullptr);
  std::set<int64_t> gone;
  for (int round = 0; round < 4; ++round) {
    std::set<int64_t> taken;
    std::map<int64_t, int64_t> held = held_before;
    for (const Candidate* c : leased) {
      if (c == nullptr) continue;
      taken.insert(c->id);
      ++held[c->sweep_id];
    }
    std::vector<int64_t> job_ids, worker_ids, deadlines, nows;
    std::vector<std::string> from_states;
    std::map<int64_t, std::pair<std::size_t, const Candidate*>> pick_of;  // job -> request
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (!results[i].ok() || leased[i] != nullptr) continue;
      const LeaseRequest& q = requests[i];
      const Worker& w = workers.at(q.worker_id);
      const std::set<std::string>& w_artifacts = artifacts_of[q.worker_id];
      auto key = [&](const Candidate& c) {
        const bool affinity = !c.artifact_key.empty() && w_artifacts.count(c.artifact_key);
        return std::make_tuple(-c.priority, !affinity, held[c.sweep_id], c.id);
      };
      const Candidate* best = nullptr;
      for (const Candidate& c : cands) {
        if (taken.count(c.id) || gone.count(c.id) || c.not_before > q.now ||
            c.devices > w.devices || c.memory_gb > w.memory_gb || c.tp > w.tp) {
          continue;
        }
        if (best == nullptr || key(c) < key(*best)) best = &c;
      }
      if (best == nullptr) continue;
      taken.insert(best->id);
      ++held[best->sweep_id];
      pick_of[best->id] = {i, best};
      job_ids.push_back(best->id);
      worker_ids.push_back(q.worker_id);
      deadlines.push_back(Micros(q.now + q.ttl));
      nows.push_back(Micros(q.now));
      from_states.push_back(best->state);
    }
    if (job_ids.empty() && round > 0) break;  // liveness was recorded in round 0
    pqxx::result r;
    st = Transact(
        "Lease",
        [&](pqxx::transaction_base& tx) -> Status {
          r = Exec(tx, LeaseApplyQuery(), NumberArray(job_ids), NumberArray(worker_ids),
                   NumberArray(deadlines), NumberArray(nows), NumberArray(live_workers),
                   NumberArray(live_nows));
          return absl::OkStatus();
        },
        Mode::kOneStatement);
    if (!st.ok()) return fail_open(st);
    live_workers.clear();
    live_nows.clear();
    for (const pqxx::row& row : r) {
      const Status moved = CheckedMove("Lease", row[1], row[2], JobEvent::kLease).status();
      if (!moved.ok()) return fail_open(moved);
      const auto& [i, cand] = pick_of.at(row[0].as<int64_t>());
      LeasedJob l;
      l.job_id = row[0].as<int64_t>();
      l.epoch = row[3].as<int64_t>();
      l.attempt = row[4].as<int32_t>();
      l.job_key = row[5].as<std::string>();
      l.artifact_key = row[6].as<std::string>();
      l.spec_json = row[7].as<std::string>();
      l.deadline = FromMicros(Micros(requests[i].now + requests[i].ttl));
      results[i] = std::optional<LeasedJob>(std::move(l));
      leased[i] = cand;
      pick_of.erase(row[0].as<int64_t>());
    }
    if (pick_of.empty()) break;
    for (const auto& [job, pick] : pick_of) gone.insert(job);
  }
  return results;
}

StatusOr<HeartbeatReply> PgJobStore::Heartbeat(int64_t job_id, int64_t epoch, absl::Time now,
                                               absl::Duration ttl) {
  HeartbeatReply reply;
  RETURN_IF_ERROR(Transact(
      "Heartbeat",
      [&](pqxx::transaction_base& tx) -> Status {
        // A heartbeat keeps the state (a self-transition), so it renews the lease without a
        // job_events row: the history records changes, not liveness.
        // The renewal and the worker's liveness in one statement.
        pqxx::result r = Exec(
            tx,
            "WITH u AS (UPDATE jobs SET lease_deadline = " + Ts(3) + ", renewed_at = " + Ts(4) +
                " WHERE id = $1 AND lease_epoch = $2 AND state = ANY($5::text[]) "
                "RETURNING state, cancel_requested, worker_id), "
                "wk AS (UPDATE workers SET last_heartbeat = " +
                Ts(4) +
                " WHERE id = (SELECT worker_id FROM u) RETURNING id) "
                "SELECT state, cancel_requested, (SELECT count(*) FROM wk) FROM u",
            job_id, epoch, Micros(now + ttl), Micros(now), SourceStatesArray(JobEvent::kHeartbeat));
        if (r.empty()) {
          ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
          return Fenced("Heartbeat", job_id, epoch, job);
        }
        ASSIGN_OR_RETURN(JobState state, StateOf(r[0][0]));
        RETURN_IF_ERROR(Apply(state, JobEvent::kHeartbeat).status());
        reply.cancel_requested = r[0][1].as<bool>() || state == JobState::kCancelRequested;
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return reply;
}

StatusOr<JobState> PgJobStore::Complete(int64_t job_id, int64_t epoch,
                                        const std::vector<JobResultRow>& results, absl::Time now) {
  std::vector<std::string> metrics, provenance;
  std::vector<double> values, stderrs;
  std::vector<int64_t> ns;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const JobResultRow& r = results[i];
    if (r.metric.empty() || !seen.insert(r.metric).second) {
      return absl::InvalidArgumentError("Complete: results[" + std::to_string(i) +
                                        "].metric is empty or repeated ('" + r.metric + "')");
    }
    metrics.push_back(r.metric);
    values.push_back(r.value);
    stderrs.push_back(r.stderr_value);
    ns.push_back(r.n);
    provenance.push_back(r.provenance_json.empty() ? "{}" : r.provenance_json);
  }
  JobState final_state = JobState::kSucceeded;
  // The common case in one autocommit statement: the job is held under `epoch`. Anything else
  // (a replay, a fenced or unknown job) takes the transaction below, which tells them apart.
  bool done = false;
  RETURN_IF_ERROR(Transact(
      "Complete",
      [&](pqxx::transaction_base& tx) -> Status {
        pqxx::result r =
            Exec(tx, CompleteQuery(), job_id, epoch, Micros(now), TextArray(metrics),
                 NumberArray(values), NumberArray(stderrs), NumberArray(ns), TextArray(provenance));
        if (r.empty()) return absl::OkStatus();
        ASSIGN_OR_RETURN(final_state,
                         CheckedMove("Complete", r[0][0], r[0][1], JobEvent::kComplete));
        done = true;
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  if (done) return final_state;
  RETURN_IF_ERROR(Transact("Complete", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
    final_state = job.state;
    if (job.epoch == epoch && IsTerminal(job.state) &&
        AlreadyApplied(tx, job_id, epoch, {JobEvent::kComplete})) {
      return absl::OkStatus();  // a replay of a Complete that landed
    }
    if (job.epoch != epoch || !Apply(job.state, JobEvent::kComplete).ok()) {
      return Fenced("Complete", job_id, epoch, job);
    }
    ASSIGN_OR_RETURN(JobState to,
                     Transition(tx, job_id, job, JobEvent::kComplete, now,
                                ", finished_at = " + Ts(1) + ", lease_deadline = NULL", now,
                                "completed by worker " + std::to_string(job.worker_id)));
    final_state = to;
    if (to == JobState::kSucceeded && !metrics.empty()) {
      Exec(tx,
           "INSERT INTO results (job_id, metric, value, stderr, n, provenance, created_at) "
           "SELECT $1, metric, value, stderr, n, provenance::json, " +
               Ts(7) +
               " FROM unnest($2::text[], $3::float8[], $4::float8[], $5::bigint[], $6::text[]) "
               "AS t(metric, value, stderr, n, provenance)",
           job_id, TextArray(metrics), NumberArray(values), NumberArray(stderrs), NumberArray(ns),
           TextArray(provenance), Micros(now));
    }
    if (to == JobState::kSucceeded && !job.artifact_key.empty() && job.worker_id != 0 &&
        !job.worker_holds_artifact) {
      // The worker now holds this job's checkpoint: later leases prefer sending it jobs on it.
      Exec(tx,
           "INSERT INTO worker_artifacts (worker_id, artifact_key) VALUES ($1, $2) "
           "ON CONFLICT DO NOTHING",
           job.worker_id, job.artifact_key);
    }
    return absl::OkStatus();
  }));
  return final_state;
}

StatusOr<JobState> PgJobStore::Fail(int64_t job_id, int64_t epoch, const std::string& reason,
                                    bool retryable, absl::Time now) {
  JobState final_state = JobState::kFailed;
  RETURN_IF_ERROR(Transact("Fail", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
    final_state = job.state;
    const JobEvent event =
        retryable && job.attempt < job.max_attempts ? JobEvent::kRetry : JobEvent::kFail;
    if (job.epoch == epoch &&
        AlreadyApplied(tx, job_id, epoch, {JobEvent::kRetry, JobEvent::kFail})) {
      return absl::OkStatus();  // a replay of a Fail that landed
    }
    if (job.epoch != epoch || !Apply(job.state, event).ok()) {
      return Fenced("Fail", job_id, epoch, job);
    }
    const absl::Time not_before = now + Backoff(job.attempt);
    ASSIGN_OR_RETURN(JobState to, Apply(job.state, event));
    const std::string set =
        to == JobState::kPending
            ? ", not_before = " + Ts(2) +
                  ", worker_id = NULL, lease_deadline = NULL, last_error = $3"
            : ", finished_at = " + Ts(1) + ", lease_deadline = NULL, last_error = $3";
    ASSIGN_OR_RETURN(final_state, Transition(tx, job_id, job, event, now, set, not_before, reason));
    return absl::OkStatus();
  }));
  return final_state;
}

StatusOr<int64_t> PgJobStore::ExpireLeases(absl::Time now) {
  int64_t expired = 0;
  RETURN_IF_ERROR(Transact("ExpireLeases", [&](pqxx::transaction_base& tx) -> Status {
    expired = 0;
    pqxx::result due =
        Exec(tx,
             "SELECT id FROM jobs WHERE state = ANY($1::text[]) AND lease_deadline < " + Ts(2) +
                 " ORDER BY id FOR UPDATE SKIP LOCKED",
             SourceStatesArray(JobEvent::kExpire), Micros(now));
    for (const pqxx::row& row : due) {
      const int64_t job_id = row[0].as<int64_t>();
      ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
      // An expired lease is a retryable failure; with no attempts left it is a FAIL.
      const bool exhausted = job.state == JobState::kLeased && job.attempt >= job.max_attempts;
      const JobEvent event = exhausted ? JobEvent::kFail : JobEvent::kExpire;
      ASSIGN_OR_RETURN(JobState to, Apply(job.state, event));
      const std::string set =
          to == JobState::kPending
              ? ", not_before = " + Ts(2) +
                    ", worker_id = NULL, lease_deadline = NULL, last_error = $3"
              : ", finished_at = " + Ts(1) + ", lease_deadline = NULL, last_error = $3";
      const std::string reason = exhausted ? "lease expired; attempts exhausted" : "lease expired";
      RETURN_IF_ERROR(
          Transition(tx, job_id, job, event, now, set, now + Backoff(job.attempt), reason)
              .status());
      ++expired;
    }
    return absl::OkStatus();
  }));
  return expired;
}

StatusOr<int64_t> PgJobStore::CancelSweep(int64_t sweep_id, const std::string& reason,
                                          absl::Time now) {
  int64_t changed = 0;
  RETURN_IF_ERROR(Transact("CancelSweep", [&](pqxx::transaction_base& tx) -> Status {
    changed = 0;
    if (Exec(tx, "UPDATE sweeps SET state = 'CANCELED' WHERE id = $1", sweep_id).affected_rows() ==
        0) {
      return absl::NotFoundError("CancelSweep: sweep " + std::to_string(sweep_id) +
                                 " does not exist");
    }
    // Jobs another active sweep still asks for keep running for that sweep.
    pqxx::result victims =
        Exec(tx,
             "SELECT j.id FROM jobs j JOIN sweep_jobs sj ON sj.job_id = j.id "
             "WHERE sj.sweep_id = $1 AND j.state = ANY($2::text[]) AND NOT EXISTS ("
             "  SELECT 1 FROM sweep_jobs o JOIN sweeps s ON s.id = o.sweep_id "
             "  WHERE o.job_id = j.id AND o.sweep_id <> $1 AND s.state = 'ACTIVE') "
             "ORDER BY j.id",
             sweep_id, SourceStatesArray(JobEvent::kCancel));
    for (const pqxx::row& row : victims) {
      const int64_t job_id = row[0].as<int64_t>();
      ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
      if (!Apply(job.state, JobEvent::kCancel).ok()) continue;  // moved on since the scan
      ASSIGN_OR_RETURN(JobState to, Apply(job.state, JobEvent::kCancel));
      const std::string set = to == JobState::kCanceled
                                  ? ", finished_at = " + Ts(1) + ", cancel_requested = true"
                                  : ", cancel_requested = true";
      RETURN_IF_ERROR(Transition(tx, job_id, job, JobEvent::kCancel, now, set, now,
                                 "sweep " + std::to_string(sweep_id) + " canceled: " + reason)
                          .status());
      ++changed;
    }
    return absl::OkStatus();
  }));
  return changed;
}

Status PgJobStore::CancelJob(int64_t job_id, const std::string& reason, absl::Time now) {
  return Transact("CancelJob", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
    if (job.state == JobState::kCanceled || job.state == JobState::kCancelRequested) {
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(JobState to, Apply(job.state, JobEvent::kCancel));
    const std::string set = to == JobState::kCanceled
                                ? ", finished_at = " + Ts(1) + ", cancel_requested = true"
                                : ", cancel_requested = true";
    return Transition(tx, job_id, job, JobEvent::kCancel, now, set, now, reason).status();
  });
}

StatusOr<std::vector<SweepInfo>> ReadSweeps(pqxx::transaction_base& tx, bool one,
                                            int64_t sweep_id) {
  pqxx::result r =
      Exec(tx,
           "SELECT id, request_id, name, spec::text, priority, state, " + Us("created_at") +
               " FROM sweeps WHERE ($1 = false OR id = $2) ORDER BY id",
           one, sweep_id);
  pqxx::result counts = Exec(
      tx,
      "SELECT sj.sweep_id, j.state, count(*) FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
      "WHERE ($1 = false OR sj.sweep_id = $2) GROUP BY 1, 2",
      one, sweep_id);
  std::vector<SweepInfo> out;
  std::map<int64_t, std::size_t> index;
  for (const pqxx::row& row : r) {
    SweepInfo s;
    s.id = row[0].as<int64_t>();
    s.request_id = row[1].as<std::string>();
    s.name = row[2].as<std::string>();
    s.spec_json = row[3].as<std::string>();
    s.priority = row[4].as<int32_t>();
    s.state = row[5].as<std::string>();
    s.created_at = FromMicros(row[6].as<int64_t>());
    for (int i = 0; i < kNumJobStates; ++i) s.jobs_by_state[static_cast<JobState>(i)] = 0;
    index[s.id] = out.size();
    out.push_back(std::move(s));
  }
  for (const pqxx::row& row : counts) {
    auto it = index.find(row[0].as<int64_t>());
    if (it == index.end()) continue;
    ASSIGN_OR_RETURN(JobState state, StateOf(row[1]));
    out[it->second].jobs_by_state[state] = row[2].as<int64_t>();
  }
  return out;
}

StatusOr<SweepInfo> PgJobStore::GetSweep(int64_t sweep_id) {
  std::vector<SweepInfo> sweeps;
  RETURN_IF_ERROR(Transact("GetSweep", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(sweeps, ReadSweeps(tx, true, sweep_id));
    return absl::OkStatus();
  }));
  if (sweeps.empty()) {
    return absl::NotFoundError("sweep " + std::to_string(sweep_id) + " does not exist");
  }
  return sweeps[0];
}

StatusOr<std::vector<SweepInfo>> PgJobStore::ListSweeps() {
  std::vector<SweepInfo> sweeps;
  RETURN_IF_ERROR(Transact("ListSweeps", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(sweeps, ReadSweeps(tx, false, 0));
    return absl::OkStatus();
  }));
  return sweeps;
}

StatusOr<JobInfo> PgJobStore::GetJob(int64_t job_id) {
  JobInfo job;
  RETURN_IF_ERROR(Transact(
      "GetJob",
      [&](pqxx::transaction_base& tx) -> Status {
        pqxx::result r = Exec(tx, "SELECT " + kJobColumns + " FROM jobs j WHERE j.id = $1", job_id);
        if (r.empty())
          return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
        ASSIGN_OR_RETURN(job, JobFromRow(r[0]));
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return job;
}

StatusOr<std::vector<JobInfo>> PgJobStore::ListJobs(int64_t sweep_id) {
  std::vector<JobInfo> jobs;
  RETURN_IF_ERROR(Transact("ListJobs", [&](pqxx::transaction_base& tx) -> Status {
    jobs.clear();
    pqxx::result r = Exec(tx,
                          "SELECT " + kJobColumns +
                              " FROM jobs j JOIN sweep_jobs sj ON sj.job_id = j.id "
                              "WHERE sj.sweep_id = $1 ORDER BY j.id",
                          sweep_id);
    for (const pqxx::row& row : r) {
      ASSIGN_OR_RETURN(JobInfo j, JobFromRow(row));
      jobs.push_back(std::move(j));
    }
    return absl::OkStatus();
  }));
  return jobs;
}

StatusOr<std::vector<JobResultRow>> PgJobStore::Results(const ResultFilter& filter) {
  std::vector<JobResultRow> out;
  RETURN_IF_ERROR(Transact("Results", [&](pqxx::transaction_base& tx) -> Status {
    out.clear();
    pqxx::result r =
        Exec(tx,
             "SELECT r.job_id, j.job_key, r.metric, r.value, r.stderr, r.n, r.provenance::text "
             "FROM results r JOIN jobs j ON j.id = r.job_id "
             "WHERE ($1 = false OR EXISTS (SELECT 1 FROM sweep_jobs sj "
             "                             WHERE sj.job_id = r.job_id AND sj.sweep_id = $2)) "
             "AND ($3 = false OR j.job_key = $4) AND ($5 = false OR r.metric = $6) "
             "ORDER BY r.job_id, r.metric",
             filter.sweep_id.has_value(), filter.sweep_id.value_or(0), filter.job_key.has_value(),
             filter.job_key.value_or(""), filter.metric.has_value(), filter.metric.value_or(""));
    for (const pqxx::row& row : r) {
      JobResultRow x;
      x.job_id = row[0].as<int64_t>();
      x.job_key = row[1].as<std::string>();
      x.metric = row[2].as<std::string>();
      x.value = row[3].as<double>();
      x.stderr_value = row[4].as<double>();
      x.n = row[5].as<int64_t>();
      x.provenance_json = row[6].as<std::string>();
      out.push_back(std::move(x));
    }
    return absl::OkStatus();
  }));
  return out;
}

StatusOr<std::vector<JobEventRow>> PgJobStore::Events(int64_t job_id) {
  std::vector<JobEventRow> out;
  RETURN_IF_ERROR(Transact("Events", [&](pqxx::transaction_base& tx) -> Status {
    out.clear();
    pqxx::result r = Exec(tx,
                          "SELECT " + Us("at") +
                              ", from_state, to_state, event, epoch, worker_id, reason "
                              "FROM job_events WHERE job_id = $1 ORDER BY id",
                          job_id);
    for (const pqxx::row& row : r) {
      JobEventRow e;
      e.at = FromMicros(row[0].as<int64_t>());
      if (!row[1].is_null()) {
        ASSIGN_OR_RETURN(e.from, StateOf(row[1]));
      }
      ASSIGN_OR_RETURN(e.to, StateOf(row[2]));
      ASSIGN_OR_RETURN(e.event, ParseJobEvent(row[3].as<std::string>()));
      e.epoch = row[4].as<int64_t>();
      if (!row[5].is_null()) e.worker_id = row[5].as<int64_t>();
      e.reason = row[6].as<std::string>();
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  }));
  return out;
}

StatusOr<std::map<JobState, int64_t>> PgJobStore::CountJobsByState() {
  std::map<JobState, int64_t> counts;
  for (int i = 0; i < kNumJobStates; ++i) counts[static_cast<JobState>(i)] = 0;
  RETURN_IF_ERROR(Transact("CountJobsByState", [&](pqxx::transaction_base& tx) -> Status {
    for (const pqxx::row& row : tx.exec("SELECT state, count(*) FROM jobs GROUP BY state")) {
      ASSIGN_OR_RETURN(JobState s, StateOf(row[0]));
      counts[s] = row[1].as<int64_t>();
    }
    return absl::OkStatus();
  }));
  return counts;
}

}  // namespace

Status JobStoreOptions::Validate() const {
  if (max_connections < 1) {
    return absl::InvalidArgumentError("JobStoreOptions.max_connections must be >= 1");
  }
  if (backoff_base < absl::ZeroDuration() || backoff_max < backoff_base) {
    return absl::InvalidArgumentError("JobStoreOptions: need 0 <= backoff_base <= backoff_max");
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& conninfo,
                                                   const JobStoreOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  RETURN_IF_ERROR(Migrate(conninfo).status());
  return std::unique_ptr<JobStore>(new PgJobStore(conninfo, options));
}

}  // namespace bitsweep::store
