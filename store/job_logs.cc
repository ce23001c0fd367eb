// The output of each job's process (store/schema/007_job_logs.sql): PutJobLog, GetJobLog.
#include "common/utf8.h"
#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

Status PgJobStore::PutJobLog(int64_t job_id, int64_t epoch, const std::string& text,
                             absl::Time now) {
  if (!IsValidUtf8(text) || text.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("job log: not valid UTF-8 text (or it holds a NUL byte)");
  }
  return Transact(
      "PutJobLog",
      [&](pqxx::transaction_base& tx) -> Status {
        // One statement: the job's current attempt, and no overwrite by a lower epoch.
        pqxx::result r = Exec(tx,
                              "WITH j AS (SELECT id, attempt FROM jobs WHERE id = $1) "
                              "INSERT INTO job_logs (job_id, epoch, attempt, text, stored_at) "
                              "SELECT id, $2, attempt, $3, " +
                                  Ts(4) +
                                  " FROM j ON CONFLICT (job_id) DO UPDATE SET epoch = "
                                  "excluded.epoch, attempt = excluded.attempt, text = "
                                  "excluded.text, stored_at = excluded.stored_at "
                                  "WHERE job_logs.epoch <= excluded.epoch "
                                  "RETURNING job_id",
                              job_id, epoch, text, Micros(now));
        if (!r.empty()) return absl::OkStatus();
        pqxx::result exists = Exec(tx, "SELECT 1 FROM jobs WHERE id = $1", job_id);
        if (exists.empty()) {
          return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
        }
        return absl::OkStatus();  // a newer attempt's output is kept
      });
}

StatusOr<JobLog> PgJobStore::GetJobLog(int64_t job_id) {
  JobLog log;
  RETURN_IF_ERROR(Transact(
      "GetJobLog",
      [&](pqxx::transaction_base& tx) -> Status {
        pqxx::result r = Exec(tx,
                              "SELECT l.epoch, l.attempt, l.text, " + Us("l.stored_at") +
                                  " AS stored_at_us, j.id AS job FROM jobs j "
                                  "LEFT JOIN job_logs l ON l.job_id = j.id WHERE j.id = $1",
                              job_id);
        if (r.empty()) {
          return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
        }
        if (r[0]["epoch"].is_null()) return absl::OkStatus();
        log.stored = true;
        log.epoch = r[0]["epoch"].as<int64_t>();
        log.attempt = r[0]["attempt"].as<int32_t>();
        log.text = r[0]["text"].as<std::string>();
        log.stored_at = FromMicros(r[0]["stored_at_us"].as<int64_t>());
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return log;
}

}  // namespace bitsweep::store::internal
