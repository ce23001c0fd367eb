// What enters the store: sweeps with their jobs (SubmitSweep) and workers (RegisterWorker).
#include <set>

#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

namespace {

// A large batch changes the jobs table's shape enough to refresh its statistics at once.
constexpr std::size_t kAnalyzeAfterJobs = 1000;

// The jobs of a SubmitSweep, validated, as one array parameter per column.
struct JobArrays {
  std::string keys, artifacts, specs, priorities, max_attempts, devices, memory, tps;
  std::string baseline_keys, holds;  // holds in microseconds
};

StatusOr<JobArrays> ToArrays(const std::vector<NewJob>& jobs) {
  std::vector<std::string> keys, artifacts, specs, baseline_keys;
  std::vector<int32_t> priorities, max_attempts, devices, tps;
  std::vector<int64_t> holds;
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
    if (j.hold < absl::ZeroDuration()) return absl::InvalidArgumentError(where + "hold < 0");
    baseline_keys.push_back(j.baseline_key);
    holds.push_back(absl::ToInt64Microseconds(j.hold));
  }
  return JobArrays{TextArray(keys),          TextArray(artifacts),      TextArray(specs),
                   NumberArray(priorities),  NumberArray(max_attempts), NumberArray(devices),
                   NumberArray(memory),      NumberArray(tps),          TextArray(baseline_keys),
                   NumberArray(holds)};
}

}  // namespace

StatusOr<int64_t> PgJobStore::SubmitSweep(const std::string& request_id, const std::string& name,
                                          const std::string& spec_json, int32_t priority,
                                          const std::vector<NewJob>& jobs, absl::Time now,
                                          SubmitCounts* counts) {
  if (request_id.empty()) return absl::InvalidArgumentError("SubmitSweep: request_id is empty");
  ASSIGN_OR_RETURN(const JobArrays a, ToArrays(jobs));
  int64_t sweep_id = 0;
  SubmitCounts c;
  RETURN_IF_ERROR(Transact("SubmitSweep " + request_id, [&](pqxx::transaction_base& tx) -> Status {
    c = SubmitCounts{};  // a retried transaction counts afresh
    pqxx::result r = Exec(tx,
                          "INSERT INTO sweeps (request_id, name, spec, priority, created_at) "
                          "VALUES ($1, $2, $3::json, $4, " +
                              Ts(5) + ") ON CONFLICT (request_id) DO NOTHING RETURNING id",
                          request_id, name, spec_json, priority, Micros(now));
    if (r.empty()) {  // a replay: answer with the original sweep
      sweep_id =
          Exec1(tx, "SELECT id FROM sweeps WHERE request_id = $1", request_id)["id"].as<int64_t>();
      return absl::OkStatus();
    }
    sweep_id = r[0]["id"].as<int64_t>();
    if (jobs.empty()) return absl::OkStatus();
    // One statement per batch (10,000 jobs in one round trip); SUBMIT events for new rows only,
    // one returned row per job created.
    pqxx::result created =
        Exec(tx,
             "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
             "$5::int[], $6::int[], $7::float8[], $8::int[], $14::text[], $15::bigint[]) AS "
             "t(job_key, artifact_key, spec, priority, max_attempts, devices, memory_gb, tp, "
             "baseline_key, hold_us)), "
             "ins AS (INSERT INTO jobs (sweep_id, job_key, artifact_key, spec, state, priority, "
             "max_attempts, devices, memory_gb, tp, baseline_key, not_before, created_at, "
             "updated_at) "
             "SELECT $9, job_key, artifact_key, spec::json, $10, priority, max_attempts, devices, "
             "memory_gb, tp, NULLIF(baseline_key, ''), " +
                 TsOf("$11::bigint + hold_us") + ", " + Ts(11) + ", " + Ts(11) +
                 " FROM input ON CONFLICT (job_key) DO NOTHING RETURNING id) "
                 "INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, reason) "
                 "SELECT id, " +
                 Ts(11) + ", NULL, $10, $12, 0, $13 FROM ins RETURNING job_id",
             a.keys, a.artifacts, a.specs, a.priorities, a.max_attempts, a.devices, a.memory, a.tps,
             sweep_id, StateName(kInitialJobState), Micros(now), EventName(JobEvent::kSubmit),
             "sweep " + std::to_string(sweep_id), a.baseline_keys, a.holds);
    c.created = static_cast<int64_t>(created.size());
    if (jobs.size() >= kAnalyzeAfterJobs) {
      // A large batch changes the table's shape: refresh the planner's statistics now rather
      // than when autovacuum gets to it, so the lease query keeps its primary-key plan.
      tx.exec("ANALYZE jobs");
    }
    pqxx::result conflict =
        Exec(tx,
             "SELECT j.job_key FROM jobs j JOIN unnest($1::text[], $2::text[]) AS t(job_key, spec) "
             "ON j.job_key = t.job_key WHERE j.spec::text <> t.spec LIMIT 1",
             a.keys, a.specs);
    if (!conflict.empty()) {
      return absl::AlreadyExistsError("SubmitSweep " + request_id + ": job_key '" +
                                      conflict[0]["job_key"].as<std::string>() +
                                      "' already exists with a different spec");
    }
    Exec(tx,
         "INSERT INTO sweep_jobs (sweep_id, job_id) SELECT $1, id FROM jobs "
         "WHERE job_key = ANY($2::text[]) ON CONFLICT DO NOTHING",
         sweep_id, a.keys);
    c.reused = Exec1(tx,
                     "SELECT count(*) AS n FROM jobs WHERE job_key = ANY($1::text[]) AND "
                     "state = $2",
                     a.keys, StateName(JobState::kSucceeded))["n"]
                   .as<int64_t>();
    // A new sweep asking for a job that ended CANCELED or FAILED runs it again (kResubmit: fresh
    // attempts, and it counts toward this sweep's fairness); a SUCCEEDED job keeps its result,
    // which this sweep sees. A replay returned above, before this point, so it retries nothing.
    pqxx::result revive = Exec(tx,
                               "SELECT id, last_error FROM jobs WHERE job_key = ANY($1::text[]) "
                               "AND state = ANY($2::text[]) ORDER BY id",
                               a.keys, SourceStatesArray(JobEvent::kResubmit));
    for (const pqxx::row& row : revive) {
      const int64_t job_id = row["id"].as<int64_t>();
      ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
      if (!Apply(job.state, JobEvent::kResubmit).ok()) continue;  // moved on since the scan
      std::string reason =
          "resubmitted by sweep " + std::to_string(sweep_id) + " (was " + StateName(job.state);
      const std::string last_error = row["last_error"].as<std::string>();
      if (!last_error.empty()) reason += ": " + last_error;
      reason += ")";
      RETURN_IF_ERROR(Transition(tx, job_id, job, JobEvent::kResubmit, now, now, reason).status());
      Exec(tx, "UPDATE jobs SET sweep_id = $1 WHERE id = $2", sweep_id, job_id);
      ++c.resubmitted;
    }
    c.shared = static_cast<int64_t>(jobs.size()) - c.created - c.reused - c.resubmitted;
    // Early abort for the artifacts whose perplexity is already known (an earlier sweep ran
    // it): a revived job stays PENDING or is SKIPPED again at once, as the rules of every
    // sweep that now asks for it say. And for those with a job another sweep's rule holds: when
    // this sweep has no rule, or one that cannot skip it, the hold ends now.
    pqxx::result decided = Exec(tx,
                                "SELECT DISTINCT artifact_key FROM jobs WHERE job_key = "
                                "ANY($1::text[]) AND baseline_key IS NOT NULL AND (state IN "
                                "('SUCCEEDED', 'FAILED') OR (state = 'PENDING' AND sweep_id <> $2 "
                                "AND not_before > " +
                                    Ts(3) + ")) ORDER BY 1",
                                a.keys, sweep_id, Micros(now));
    for (const pqxx::row& row : decided) {
      RETURN_IF_ERROR(EarlyAbortArtifact(tx, row[0].as<std::string>(), now).status());
    }
    return absl::OkStatus();
  }));
  if (counts != nullptr) *counts = c;
  return sweep_id;
}

StatusOr<int64_t> PgJobStore::RegisterWorker(const WorkerInfo& worker, absl::Time now,
                                             absl::Duration live) {
  if (worker.name.empty()) return absl::InvalidArgumentError("RegisterWorker: name is empty");
  const Capabilities& c = worker.capabilities;
  if (c.devices < 0) return absl::InvalidArgumentError("RegisterWorker: devices < 0");
  if (!(c.memory_gb >= 0)) return absl::InvalidArgumentError("RegisterWorker: memory_gb < 0");
  if (c.tp < 1) return absl::InvalidArgumentError("RegisterWorker: tp < 1");
  int64_t id = 0;
  RETURN_IF_ERROR(
      Transact("RegisterWorker " + worker.name, [&](pqxx::transaction_base& tx) -> Status {
        // One registration of a name at a time: two workers racing for a name cannot both win.
        Exec(tx, "SELECT pg_advisory_xact_lock(hashtext($1))", worker.name);
        pqxx::result held = Exec(tx,
                                 "SELECT id, session, " + Us("last_heartbeat") +
                                     " AS seen_us, labels::text AS labels FROM workers "
                                     "WHERE name = $1",
                                 worker.name);
        if (live > absl::ZeroDuration() && !held.empty() && !held[0]["session"].is_null() &&
            held[0]["session"].as<std::string>() != worker.session) {
          const absl::Time seen = FromMicros(held[0]["seen_us"].as<int64_t>());
          if (seen > now - live) {
            return absl::AlreadyExistsError(
                "Register: the worker name '" + worker.name + "' is held by a live worker (id " +
                held[0]["id"].as<std::string>() + ", labels " + held[0]["labels"].as<std::string>() +
                ", last seen " + absl::FormatDuration(absl::Trunc(now - seen, absl::Seconds(1))) +
                " ago): give this worker another --name, or stop that one");
          }
        }
        id =
            Exec1(tx,
                  "WITH w AS (INSERT INTO workers (name, devices, memory_gb, tp, labels, "
                  "registered_at, last_heartbeat, session, gpus) VALUES ($1, $2, $3, $4, "
                  "$5::json, " +
                      Ts(7) + ", " + Ts(7) +
                      ", NULLIF($8, ''), $9::json) ON CONFLICT (name) DO UPDATE SET devices = "
                      "EXCLUDED.devices, memory_gb = EXCLUDED.memory_gb, tp = EXCLUDED.tp, "
                      "labels = EXCLUDED.labels, last_heartbeat = EXCLUDED.last_heartbeat, "
                      "session = EXCLUDED.session, gpus = EXCLUDED.gpus RETURNING id), "
                      // What it reports now, added to what it was seen completing before.
                      "a AS (INSERT INTO worker_artifacts (worker_id, artifact_key) "
                      "SELECT w.id, t.key FROM w CROSS JOIN unnest($6::text[]) WITH ORDINALITY "
                      "AS t(key, n) WHERE t.key <> '' ORDER BY t.n ON CONFLICT DO NOTHING) "
                      "SELECT id FROM w",
                  worker.name, c.devices, c.memory_gb, c.tp, worker.labels_json,
                  TextArray(worker.artifacts), Micros(now), worker.session, worker.gpus_json)["id"]
                .as<int64_t>();
        return absl::OkStatus();
      }));
  return id;
}

}  // namespace bitsweep::store::internal
