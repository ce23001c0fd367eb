// How any PgJobStore call moves one job: lock its row, check the transition table, apply the
// guarded update with its destination's set clause, append the job_events row.
#include "store/internal/transitions.h"

#include <algorithm>

#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

std::string SetClause(JobEvent event, JobState to, const SetValues& v) {
  // A failure (retryable or not, or an expired lease) is kept as the job's last error.
  const bool failure =
      event == JobEvent::kRetry || event == JobEvent::kFail || event == JobEvent::kExpire;
  const std::string last_error = failure ? ", last_error = " + v.reason : "";
  switch (to) {
    case JobState::kPending: {
      // Back in the queue: held by nobody, due at not_before. A resubmitted job starts afresh.
      std::string set =
          ", not_before = " + v.not_before + ", worker_id = NULL, lease_deadline = NULL";
      if (event == JobEvent::kResubmit) {
        set += ", attempt = 0, cancel_requested = false, finished_at = NULL, last_error = '', "
               "saved_seconds = 0";
      }
      return set + last_error;
    }
    case JobState::kSucceeded:
    case JobState::kFailed:
    case JobState::kCanceled:
      return ", finished_at = " + v.now + ", lease_deadline = NULL" + last_error +
             (event == JobEvent::kCancel ? ", cancel_requested = true" : "");
    case JobState::kSkipped:  // never ran: the reason (the rule and its numbers) is kept
      return ", finished_at = " + v.now + ", last_error = " + v.reason;
    case JobState::kCancelRequested:  // still leased; the holder learns it at its heartbeat
      return ", cancel_requested = true";
    case JobState::kLeased:  // a new lease: the fencing token and the attempt count grow
      return ", lease_epoch = jobs.lease_epoch + 1, attempt = jobs.attempt + 1, worker_id = " +
             v.worker + ", lease_deadline = " + v.deadline + ", leased_at = " + v.now +
             ", renewed_at = " + v.now + ", lease_request_id = " + v.request_id;
  }
  return "";
}

StatusOr<PgJobStore::Locked> PgJobStore::LockJob(pqxx::transaction_base& tx, int64_t job_id) {
  pqxx::result r = Exec(tx,
                        "SELECT state, lease_epoch, attempt, max_attempts, "
                        "coalesce(worker_id, 0) AS worker_id, coalesce((SELECT session FROM "
                        "workers w WHERE w.id = jobs.worker_id), '') AS holder_session "
                        "FROM jobs WHERE id = $1 FOR UPDATE",
                        job_id);
  if (r.empty()) return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
  Locked l;
  ASSIGN_OR_RETURN(l.state, StateOf(r[0]["state"]));
  l.epoch = r[0]["lease_epoch"].as<int64_t>();
  l.attempt = r[0]["attempt"].as<int32_t>();
  l.max_attempts = r[0]["max_attempts"].as<int32_t>();
  l.worker_id = r[0]["worker_id"].as<int64_t>();
  l.holder_session = r[0]["holder_session"].as<std::string>();
  return l;
}

StatusOr<JobState> PgJobStore::Transition(pqxx::transaction_base& tx, int64_t job_id,
                                          const Locked& job, JobEvent event, absl::Time now,
                                          absl::Time not_before, const std::string& reason) {
  ASSIGN_OR_RETURN(JobState to, Apply(job.state, event));
  // The guarded update and its job_events row in one statement (one round trip per change).
  pqxx::result r =
      Exec(tx,
           "WITH u AS (UPDATE jobs SET state = $4, updated_at = " + Ts(1) + SetClause(event, to) +
               " WHERE id = $5 AND lease_epoch = $6 AND state = ANY($7::text[]) RETURNING id) "
               "INSERT INTO job_events (job_id, at, from_state, to_state, event, epoch, worker_id, "
               "reason) SELECT u.id, " +
               Ts(1) +
               ", $8, $4, $9, $6, NULLIF($10, 0::bigint), $3 FROM u "
               // Types $2 when the set clause does not use it.
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

Status PgJobStore::CheckSession(const std::string& what, int64_t job_id, const Locked& job,
                                const std::string& session) {
  if (job.holder_session == session) return absl::OkStatus();
  return absl::FailedPreconditionError(what + ": job " + std::to_string(job_id) +
                                       " is held by another worker session");
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

absl::Duration PgJobStore::Backoff(int32_t attempt) const {
  absl::Duration d = options_.backoff_base;
  for (int i = 1; i < attempt && d < options_.backoff_max; ++i) d *= 2;
  return std::min(d, options_.backoff_max);
}

}  // namespace bitsweep::store::internal
