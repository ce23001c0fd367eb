#include "store/internal/lease_sql.h"

#include "store/internal/lease_ranking.h"
#include "store/internal/sql.h"
#include "store/internal/transitions.h"

namespace bitsweep::store::internal {

namespace {

// `u AS (...), e AS (...)`: the guarded LEASE of the rows `from_where` joins to jobs (their
// previous state in `from_state`), returning the leased jobs as LeasedFromRow reads them, and
// their job_events rows. The worker, deadline and now come from `v`.
std::string LeaseTransitionSql(const std::string& from_where, const std::string& from_state,
                               const SetValues& v) {
  return "u AS (UPDATE jobs SET state = " + DestinationCase(JobEvent::kLease, "jobs.state") +
         ", updated_at = " + v.now + SetClause(JobEvent::kLease, JobState::kLeased, v) + " FROM " +
         from_where + " RETURNING jobs.id, " + from_state +
         " AS from_state, jobs.state AS to_state, jobs.lease_epoch, jobs.attempt, jobs.job_key, "
         "jobs.artifact_key, jobs.spec::text AS spec, jobs.worker_id, jobs.leased_at), "
         "e AS (INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, "
         "worker_id, reason) SELECT id, leased_at, from_state, to_state, '" +
         EventName(JobEvent::kLease) + "', lease_epoch, worker_id, 'attempt ' || attempt FROM u)";
}

}  // namespace

// The candidates are those of lease_ranking.h's windows for the worker's capabilities and every
// artifact it holds; the outer query ranks them and locks the first row nobody holds: SKIP
// LOCKED lets concurrent leasers take different rows instead of queueing. The worker's
// capabilities and artifacts come from its workers row (the registry is persistent, so a
// restarted coordinator leases without asking workers to register again).
const std::string& LeaseOneQuery() {
  static const std::string* query = [] {
    const std::string pending = StateList(JobEvent::kLease);
    return new std::string(
        // w: the worker, when it holds the session $5 ('' = registered without one); wk
        // marks it seen only then, and workers_known tells an unknown worker from a wrong
        // session.
        "WITH w AS (SELECT devices, memory_gb, tp FROM workers WHERE id = $2 "
        "  AND coalesce(session, '') = $5), "
        "held AS (" +
        HeldPerSweepSql() +
        "), "
        "cand AS ("
        "  (SELECT x.id FROM w CROSS JOIN sweeps s CROSS JOIN LATERAL " +
        CandidateWindowSql("c.sweep_id = s.id", std::to_string(kLeaseWindow), Ts(1)) +
        " x) "
        // UNION ALL, not UNION: = ANY() below ignores repeated ids, while UNION's hash table
        // is sized by the (unanalyzed sweeps: wildly high) row estimate and then walked whole:
        // it was half of LeaseMany's read.
        "  UNION ALL "
        "  (SELECT y.id FROM w CROSS JOIN worker_artifacts a CROSS JOIN LATERAL " +
        CandidateWindowSql("c.artifact_key = a.artifact_key", std::to_string(kAffinityWindow),
                           Ts(1)) +
        " y WHERE a.worker_id = $2)), "
        // = ANY(ARRAY(...)) keeps this a primary-key lookup even when the statistics of a
        // freshly loaded jobs table would make the planner scan every pending job.
        "pick AS (SELECT j.id, j.state FROM jobs j LEFT JOIN held h ON h.sweep_id = j.sweep_id "
        "WHERE j.id = ANY(ARRAY(SELECT id FROM cand)) AND j.state IN " +
        pending + " AND EXISTS (SELECT 1 FROM w) ORDER BY " + LeaseOrderBySql() +
        " LIMIT 1 FOR UPDATE OF j SKIP LOCKED), "
        // The guarded LEASE transition, its job_events row and the worker's liveness, all in
        // this one statement: the lease path is the coordinator's hot path.
        + LeaseTransitionSql("pick WHERE jobs.id = pick.id AND jobs.state IN " + pending,
                             "pick.state", {Ts(1), "", "", "$2", Ts(3), "NULLIF($4, '')"}) +
        ", wk AS (UPDATE workers SET last_heartbeat = " + Ts(1) +
        " WHERE id = $2 AND coalesce(session, '') = $5 RETURNING id), "
        "known AS (SELECT count(*) AS n FROM workers WHERE id = $2) "
        "SELECT u.id, u.from_state, u.to_state, u.lease_epoch, u.attempt, u.job_key, "
        "u.artifact_key, u.spec, (SELECT count(*) FROM wk) AS workers_seen, "
        "(SELECT n FROM known) AS workers_known FROM u "
        "UNION ALL SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "(SELECT count(*) FROM wk), (SELECT n FROM known) WHERE NOT EXISTS (SELECT 1 FROM u)");
  }();
  return *query;
}

// The candidates: lease_ranking.h's windows for every distinct capability set of the batch and
// for the $5 artifacts each worker gained last (kBatchAffinityArtifacts).
const std::string& LeaseSnapshotQuery() {
  static const std::string* query = [] {
    const std::string pending = StateList(JobEvent::kLease);
    auto kind = [](SnapshotRowKind k) { return "SELECT " + std::to_string(k); };
    return new std::string(
        "WITH ws AS (SELECT id, devices, memory_gb, tp, coalesce(session, '') AS session "
        "  FROM workers WHERE id = ANY($2::bigint[])), "
        "caps AS (SELECT DISTINCT devices, memory_gb, tp FROM ws), "
        "arts AS (SELECT DISTINCT a.key, ws.devices, ws.memory_gb, ws.tp FROM ws "
        "  CROSS JOIN LATERAL (SELECT artifact_key AS key FROM worker_artifacts "
        "    WHERE worker_id = ws.id ORDER BY seq DESC LIMIT $5) a), "
        "cand AS ("
        "  (SELECT x.id FROM caps w CROSS JOIN sweeps s CROSS JOIN LATERAL " +
        CandidateWindowSql("c.sweep_id = s.id", "$3", Ts(1)) +
        " x) "
        "  UNION ALL "  // as in LeaseOneQuery
        "  (SELECT y.id FROM arts w CROSS JOIN LATERAL " +
        CandidateWindowSql("c.artifact_key = w.key", "$4", Ts(1)) +
        " y)), "
        "cj AS (SELECT j.id, j.sweep_id, j.priority, j.artifact_key, j.devices, j.memory_gb, "
        "  j.tp, j.not_before FROM jobs j "
        "  WHERE j.id = ANY(ARRAY(SELECT id FROM cand)) AND j.state IN " +
        pending + ") " + kind(kWorkerRow) +
        " AS kind, id, NULL::bigint AS sweep_id, NULL::int AS priority, "
        // A worker row's artifact_key is its session (ReadLeaseSnapshot).
        "session AS artifact_key, devices::int AS devices, memory_gb::float8 AS memory_gb, "
        "tp::int AS tp, NULL::bigint AS not_before_us, "
        "NULL::bigint AS held FROM ws "
        "UNION ALL " +
        kind(kCandidateRow) +
        ", id, sweep_id, priority::int, artifact_key, devices::int, memory_gb::float8, "
        "tp::int, " +
        Us("not_before") + ", NULL::bigint FROM cj UNION ALL " + kind(kWorkerArtifactRow) +
        ", worker_id, NULL, NULL, artifact_key, NULL, NULL, NULL, NULL, NULL "
        "FROM worker_artifacts WHERE worker_id = ANY($2::bigint[]) AND artifact_key = "
        "ANY(ARRAY(SELECT DISTINCT artifact_key FROM cj)) UNION ALL " +
        kind(kHeldRow) + ", NULL, sweep_id, NULL, NULL, NULL, NULL, NULL, NULL, n FROM (" +
        HeldPerSweepSql() + ") held");
  }();
  return *query;
}

const std::string& LeaseApplyQuery() {
  static const std::string* query = [] {
    return new std::string(
        "WITH a AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
        "$4::bigint[], $7::text[]) AS a(job_id, worker_id, deadline, now, request_id)), "
        "lk AS (SELECT id, state FROM jobs WHERE id = ANY($1::bigint[]) AND state IN " +
        StateList(JobEvent::kLease) + " FOR UPDATE SKIP LOCKED), " +
        LeaseTransitionSql("a JOIN lk ON lk.id = a.job_id WHERE jobs.id = a.job_id", "lk.state",
                           {TsOf("a.now"), "", "", "a.worker_id", TsOf("a.deadline"),
                            "NULLIF(a.request_id, '')"}) +
        ", wk AS (UPDATE workers SET last_heartbeat = " + TsOf("l.now") +
        " FROM unnest($5::bigint[], $6::bigint[]) AS l(id, now) WHERE workers.id = l.id) "
        "SELECT * FROM u");
  }();
  return *query;
}

}  // namespace bitsweep::store::internal
