// Client cancels: a job (CancelJob) or every job of a sweep that no other active sweep needs.
#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

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
      const int64_t job_id = row["id"].as<int64_t>();
      ASSIGN_OR_RETURN(Locked job, LockJob(tx, job_id));
      if (!Apply(job.state, JobEvent::kCancel).ok()) continue;  // moved on since the scan
      RETURN_IF_ERROR(Transition(tx, job_id, job, JobEvent::kCancel, now, now,
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
    return Transition(tx, job_id, job, JobEvent::kCancel, now, now, reason).status();
  });
}

}  // namespace bitsweep::store::internal
