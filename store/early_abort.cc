// Early abort in the store: reads the jobs of one artifact with their perplexities, their
// baselines' and the rules of every sweep that asks for them, asks common/early_abort.h
// PlanEarlyAbort what to do, and does it: SKIP a pending job (with its reason and the
// worker-seconds it saves), or release its hold (not_before = now).
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/diverged.h"
#include "common/early_abort.h"
#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

namespace {

// The ppl a job measured: its stored "ppl" result, or the inf/NaN its diverged failure names.
std::optional<double> PplOf(const pqxx::row& row, JobState state, const char* value_column,
                            const char* error_column) {
  if (!row[value_column].is_null()) return row[value_column].as<double>();
  if (state == JobState::kFailed && !row[error_column].is_null()) {
    const auto diverged = ParseDivergedReason(row[error_column].as<std::string>());
    if (diverged && diverged->metric == "ppl") return diverged->value;
  }
  return std::nullopt;
}

// The early_abort rules of the sweeps that ask for a job: a JSON array with one entry per sweep,
// null for a sweep without a rule.
Status ReadRules(const pqxx::field& field, ArtifactJob* job) {
  if (field.is_null()) return absl::OkStatus();
  const nlohmann::json rules = nlohmann::json::parse(field.as<std::string>(), nullptr, false);
  if (!rules.is_array()) return absl::InternalError("early abort: unreadable sweep rules");
  for (const nlohmann::json& rule : rules) {
    if (rule.is_null()) {
      job->unruled = true;
      continue;
    }
    ASSIGN_OR_RETURN(EarlyAbortRule r, EarlyAbortRuleFromJson(rule.dump()));
    job->rules.push_back(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<int64_t> PgJobStore::EarlyAbortArtifact(pqxx::transaction_base& tx,
                                                 const std::string& artifact_key,
                                                 absl::Time now) {
  // One row per job of the artifact; b is the job's baseline (the same task on the FP model).
  pqxx::result r = Exec(
      tx,
      "SELECT j.id, j.state, j.spec->'eval'->>'task' AS task, j.last_error, "
      "  (SELECT json_agg(s.spec->'early_abort' ORDER BY s.id) FROM sweep_jobs sj "
      "   JOIN sweeps s ON s.id = sj.sweep_id WHERE sj.job_id = j.id)::text AS rules, "
      "  (SELECT x.value FROM results x WHERE x.job_id = j.id AND x.metric = 'ppl') AS ppl, "
      "  b.state AS b_state, b.last_error AS b_error, "
      "  (SELECT x.value FROM results x WHERE x.job_id = b.id AND x.metric = 'ppl') AS b_ppl, "
      "  CASE WHEN b.state = 'SUCCEEDED' AND b.leased_at IS NOT NULL THEN "
      "    extract(epoch FROM b.finished_at - b.leased_at)::float8 ELSE 0 END AS b_seconds "
      "FROM jobs j LEFT JOIN jobs b ON b.job_key = j.baseline_key "
      "WHERE j.artifact_key = $1 AND j.baseline_key IS NOT NULL ORDER BY j.id",
      artifact_key);
  std::vector<ArtifactJob> jobs;
  std::map<int64_t, double> baseline_seconds;
  for (const pqxx::row& row : r) {
    ArtifactJob job;
    job.id = row["id"].as<int64_t>();
    ASSIGN_OR_RETURN(job.state, StateOf(row["state"]));
    job.task = row["task"].is_null() ? "" : row["task"].as<std::string>();
    RETURN_IF_ERROR(ReadRules(row["rules"], &job));
    job.ppl = PplOf(row, job.state, "ppl", "last_error");
    if (!row["b_state"].is_null()) {
      ASSIGN_OR_RETURN(JobState b, StateOf(row["b_state"]));
      job.baseline_state = b;
      job.baseline_ppl = PplOf(row, b, "b_ppl", "b_error");
    }
    baseline_seconds[job.id] = row["b_seconds"].as<double>();
    jobs.push_back(std::move(job));
  }
  int64_t skipped = 0;
  for (const EarlyAbortAction& action : PlanEarlyAbort(jobs)) {
    if (action.kind == EarlyAbortAction::kRelease) {
      // Only the submission's hold: a retry's backoff (attempt > 0) stays.
      Exec(tx,
           "UPDATE jobs SET not_before = " + Ts(2) +
               " WHERE id = $1 AND state = 'PENDING' AND attempt = 0 AND not_before > " + Ts(2),
           action.job_id, Micros(now));
      continue;
    }
    ASSIGN_OR_RETURN(Locked job, LockJob(tx, action.job_id));
    if (!Apply(job.state, JobEvent::kSkip).ok()) continue;  // leased or ended since the read
    RETURN_IF_ERROR(
        Transition(tx, action.job_id, job, JobEvent::kSkip, now, now, action.reason).status());
    Exec(tx, "UPDATE jobs SET saved_seconds = $2 WHERE id = $1", action.job_id,
         baseline_seconds[action.job_id]);
    ++skipped;
  }
  return skipped;
}

Status PgJobStore::EarlyAbortAfter(int64_t job_id, absl::Time now) {
  return Transact("EarlyAbort", [&](pqxx::transaction_base& tx) -> Status {
    // The artifacts this job's result decides: its own when it is a quantized job, and, when it
    // is a baseline, those of the quantized jobs measured against it.
    pqxx::result r = Exec(tx,
                          "SELECT artifact_key FROM jobs WHERE id = $1 AND baseline_key IS NOT "
                          "NULL UNION SELECT q.artifact_key FROM jobs j JOIN jobs q ON "
                          "q.baseline_key = j.job_key WHERE j.id = $1 ORDER BY 1",
                          job_id);
    for (const pqxx::row& row : r) {
      RETURN_IF_ERROR(EarlyAbortArtifact(tx, row[0].as<std::string>(), now).status());
    }
    return absl::OkStatus();
  });
}

StatusOr<int64_t> PgJobStore::DecideHeldEarlyAborts(absl::Time now) {
  int64_t skipped = 0;
  RETURN_IF_ERROR(Transact("DecideHeldEarlyAborts", [&](pqxx::transaction_base& tx) -> Status {
    skipped = 0;
    // Held: the submission's hold (attempt 0), not a retry's backoff.
    pqxx::result r = Exec(tx,
                          "SELECT DISTINCT h.artifact_key FROM jobs h WHERE h.state = 'PENDING' "
                          "AND h.attempt = 0 AND h.baseline_key IS NOT NULL AND h.not_before > " +
                              Ts(1) +
                              " AND EXISTS (SELECT 1 FROM jobs d WHERE d.artifact_key = "
                              "h.artifact_key AND d.baseline_key IS NOT NULL AND d.state IN "
                              "('SUCCEEDED', 'FAILED')) ORDER BY 1",
                          Micros(now));
    for (const pqxx::row& row : r) {
      ASSIGN_OR_RETURN(const int64_t n, EarlyAbortArtifact(tx, row[0].as<std::string>(), now));
      skipped += n;
    }
    return absl::OkStatus();
  }));
  return skipped;
}

StatusOr<EarlyAbortSavings> PgJobStore::EarlyAbortTotals() {
  EarlyAbortSavings out;
  RETURN_IF_ERROR(Transact(
      "EarlyAbortTotals",
      [&](pqxx::transaction_base& tx) -> Status {
        const pqxx::row row = Exec1(tx,
                                    "SELECT count(*) AS n, coalesce(sum(saved_seconds), 0) AS s "
                                    "FROM jobs WHERE state = 'SKIPPED'");
        out.skipped_jobs = row["n"].as<int64_t>();
        out.saved_seconds = row["s"].as<double>();
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return out;
}

}  // namespace bitsweep::store::internal
