// Reads: workers, sweeps with their job counts, jobs, results, events, counts by state. Rows are
// decoded by column name, so a query's select list is the only place its columns are listed.
#include "common/diverged.h"
#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

namespace {

// The select list JobFromRow decodes, over jobs alias j.
const std::string& JobColumns() {
  static const std::string* columns = new std::string(
      "j.id, j.sweep_id, j.job_key, j.artifact_key, j.spec::text AS spec, j.state, j.priority, "
      "j.attempt, j.max_attempts, j.lease_epoch, j.worker_id, " +
      Us("j.lease_deadline") + " AS lease_deadline_us, " + Us("j.not_before") +
      " AS not_before_us, j.cancel_requested, j.devices, j.memory_gb, j.tp, j.last_error, " +
      Us("j.created_at") + " AS created_at_us, " + Us("j.leased_at") + " AS leased_at_us, " +
      Us("j.finished_at") + " AS finished_at_us, "
      "coalesce((SELECT w.name FROM workers w WHERE w.id = j.worker_id), '') AS worker_name");
  return *columns;
}

StatusOr<JobInfo> JobFromRow(const pqxx::row& r) {
  JobInfo j;
  j.id = r["id"].as<int64_t>();
  j.sweep_id = r["sweep_id"].as<int64_t>();
  j.job_key = r["job_key"].as<std::string>();
  j.artifact_key = r["artifact_key"].as<std::string>();
  j.spec_json = r["spec"].as<std::string>();
  ASSIGN_OR_RETURN(j.state, StateOf(r["state"]));
  j.priority = r["priority"].as<int32_t>();
  j.attempt = r["attempt"].as<int32_t>();
  j.max_attempts = r["max_attempts"].as<int32_t>();
  j.lease_epoch = r["lease_epoch"].as<int64_t>();
  if (!r["worker_id"].is_null()) j.worker_id = r["worker_id"].as<int64_t>();
  if (!r["lease_deadline_us"].is_null()) {
    j.lease_deadline = FromMicros(r["lease_deadline_us"].as<int64_t>());
  }
  j.not_before = FromMicros(r["not_before_us"].as<int64_t>());
  j.cancel_requested = r["cancel_requested"].as<bool>();
  j.needs.devices = r["devices"].as<int32_t>();
  j.needs.memory_gb = r["memory_gb"].as<double>();
  j.needs.tp = r["tp"].as<int32_t>();
  j.last_error = r["last_error"].as<std::string>();
  j.worker_name = r["worker_name"].as<std::string>();
  j.created_at = FromMicros(r["created_at_us"].as<int64_t>());
  if (!r["leased_at_us"].is_null()) j.leased_at = FromMicros(r["leased_at_us"].as<int64_t>());
  if (!r["finished_at_us"].is_null()) {
    j.finished_at = FromMicros(r["finished_at_us"].as<int64_t>());
  }
  return j;
}

StatusOr<JobResultRow> ResultFromRow(const pqxx::row& row) {
  JobResultRow x;
  x.job_id = row["job_id"].as<int64_t>();
  x.job_key = row["job_key"].as<std::string>();
  x.metric = row["metric"].as<std::string>();
  x.value = row["value"].as<double>();
  x.stderr_value = row["stderr"].as<double>();
  x.n = row["n"].as<int64_t>();
  x.provenance_json = row["provenance"].as<std::string>();
  return x;
}

StatusOr<JobEventRow> EventFromRow(const pqxx::row& row) {
  JobEventRow e;
  e.at = FromMicros(row["at_us"].as<int64_t>());
  if (!row["from_state"].is_null()) {
    ASSIGN_OR_RETURN(e.from, StateOf(row["from_state"]));
  }
  ASSIGN_OR_RETURN(e.to, StateOf(row["to_state"]));
  ASSIGN_OR_RETURN(e.event, ParseJobEvent(row["event"].as<std::string>()));
  e.epoch = row["epoch"].as<int64_t>();
  if (!row["worker_id"].is_null()) e.worker_id = row["worker_id"].as<int64_t>();
  e.reason = row["reason"].as<std::string>();
  return e;
}

// Replaces `out` with every row of `r` decoded by `decode` (a *FromRow above).
template <typename T>
Status DecodeAll(const pqxx::result& r, StatusOr<T> (*decode)(const pqxx::row&),
                 std::vector<T>& out) {
  out.clear();
  for (const pqxx::row& row : r) {
    ASSIGN_OR_RETURN(T x, decode(row));
    out.push_back(std::move(x));
  }
  return absl::OkStatus();
}

Status CheckPageLimit(int32_t limit) {
  if (limit < 1) {
    return absl::InvalidArgumentError("limit: a page holds at least 1 row, got " +
                                      std::to_string(limit));
  }
  return absl::OkStatus();
}

// The sweeps `select` picks (a WHERE / ORDER BY / LIMIT tail over sweeps s, its parameters
// `args`), in its order, each with its jobs counted by state.
template <typename... Args>
StatusOr<std::vector<SweepInfo>> ReadSweeps(pqxx::transaction_base& tx, const std::string& select,
                                            const Args&... args) {
  pqxx::result r = Exec(tx,
                        "SELECT s.id, s.request_id, s.name, s.spec::text AS spec, s.priority, "
                        "s.state, " +
                            Us("s.created_at") + " AS created_at_us FROM sweeps s " + select,
                        args...);
  pqxx::result counts = Exec(tx,
                             "SELECT sj.sweep_id, j.state, count(*) AS n, "
                             "sum(j.saved_seconds) AS saved FROM sweep_jobs sj "
                             "JOIN jobs j ON j.id = sj.job_id "
                             "WHERE sj.sweep_id IN (SELECT s.id FROM sweeps s " +
                                 select + ") GROUP BY 1, 2",
                             args...);
  std::vector<SweepInfo> out;
  std::map<int64_t, std::size_t> index;
  for (const pqxx::row& row : r) {
    SweepInfo s;
    s.id = row["id"].as<int64_t>();
    s.request_id = row["request_id"].as<std::string>();
    s.name = row["name"].as<std::string>();
    s.spec_json = row["spec"].as<std::string>();
    s.priority = row["priority"].as<int32_t>();
    s.state = row["state"].as<std::string>();
    s.created_at = FromMicros(row["created_at_us"].as<int64_t>());
    for (int i = 0; i < kNumJobStates; ++i) s.jobs_by_state[static_cast<JobState>(i)] = 0;
    index[s.id] = out.size();
    out.push_back(std::move(s));
  }
  for (const pqxx::row& row : counts) {
    auto it = index.find(row["sweep_id"].as<int64_t>());
    if (it == index.end()) continue;
    ASSIGN_OR_RETURN(JobState state, StateOf(row["state"]));
    out[it->second].jobs_by_state[state] = row["n"].as<int64_t>();
    if (state == JobState::kSkipped) out[it->second].saved_seconds = row["saved"].as<double>();
  }
  return out;
}

}  // namespace

StatusOr<WorkerInfo> PgJobStore::GetWorker(int64_t worker_id) {
  WorkerInfo w;
  RETURN_IF_ERROR(Transact(
      "GetWorker",
      [&](pqxx::transaction_base& tx) -> Status {
        // One row per artifact (or one with NULL), in the order gained. Rows, not an array:
        // pqxx 6's array parser splits an unquoted element at ';', which every artifact key
        // (JobSpec::ArtifactKey) contains.
        pqxx::result r = Exec(tx,
                              "SELECT w.id, w.name, w.devices, w.memory_gb, w.tp, "
                              "w.labels::text AS labels, w.gpus::text AS gpus, a.artifact_key, " +
                                  Us("w.last_heartbeat") +
                                  " AS last_heartbeat_us FROM workers w LEFT JOIN "
                                  "worker_artifacts a ON a.worker_id = w.id WHERE w.id = $1 "
                                  "ORDER BY a.seq",
                              worker_id);
        if (r.empty()) {
          return absl::NotFoundError("worker " + std::to_string(worker_id) + " is not registered");
        }
        w.id = r[0]["id"].as<int64_t>();
        w.name = r[0]["name"].as<std::string>();
        w.capabilities.devices = r[0]["devices"].as<int32_t>();
        w.capabilities.memory_gb = r[0]["memory_gb"].as<double>();
        w.capabilities.tp = r[0]["tp"].as<int32_t>();
        w.labels_json = r[0]["labels"].as<std::string>();
        w.gpus_json = r[0]["gpus"].as<std::string>();
        w.artifacts.clear();
        for (const pqxx::row& row : r) {
          if (!row["artifact_key"].is_null()) {
            w.artifacts.push_back(row["artifact_key"].as<std::string>());
          }
        }
        w.last_heartbeat = FromMicros(r[0]["last_heartbeat_us"].as<int64_t>());
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return w;
}

StatusOr<SweepInfo> PgJobStore::GetSweep(int64_t sweep_id) {
  std::vector<SweepInfo> sweeps;
  RETURN_IF_ERROR(Transact("GetSweep", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(sweeps, ReadSweeps(tx, "WHERE s.id = $1", sweep_id));
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
    ASSIGN_OR_RETURN(sweeps, ReadSweeps(tx, "ORDER BY s.id"));
    return absl::OkStatus();
  }));
  return sweeps;
}

StatusOr<JobInfo> PgJobStore::GetJob(int64_t job_id) {
  JobInfo job;
  RETURN_IF_ERROR(Transact(
      "GetJob",
      [&](pqxx::transaction_base& tx) -> Status {
        pqxx::result r =
            Exec(tx, "SELECT " + JobColumns() + " FROM jobs j WHERE j.id = $1", job_id);
        if (r.empty()) {
          return absl::NotFoundError("job " + std::to_string(job_id) + " does not exist");
        }
        ASSIGN_OR_RETURN(job, JobFromRow(r[0]));
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return job;
}

StatusOr<std::vector<JobInfo>> PgJobStore::ListJobs(int64_t sweep_id) {
  std::vector<JobInfo> jobs;
  RETURN_IF_ERROR(Transact("ListJobs", [&](pqxx::transaction_base& tx) -> Status {
    return DecodeAll(Exec(tx,
                          "SELECT " + JobColumns() +
                              " FROM jobs j JOIN sweep_jobs sj ON sj.job_id = j.id "
                              "WHERE sj.sweep_id = $1 ORDER BY j.id",
                          sweep_id),
                     JobFromRow, jobs);
  }));
  return jobs;
}

StatusOr<std::vector<JobResultRow>> PgJobStore::Results(const ResultFilter& filter) {
  std::vector<JobResultRow> out;
  RETURN_IF_ERROR(Transact("Results", [&](pqxx::transaction_base& tx) -> Status {
    return DecodeAll(
        Exec(tx,
             "SELECT r.job_id, j.job_key, r.metric, r.value, r.stderr, r.n, "
             "r.provenance::text AS provenance FROM results r JOIN jobs j ON j.id = r.job_id "
             "WHERE ($1 = false OR EXISTS (SELECT 1 FROM sweep_jobs sj "
             "                             WHERE sj.job_id = r.job_id AND sj.sweep_id = $2)) "
             "AND ($3 = false OR j.job_key = $4) AND ($5 = false OR r.metric = $6) "
             "ORDER BY r.job_id, r.metric",
             filter.sweep_id.has_value(), filter.sweep_id.value_or(0), filter.job_key.has_value(),
             filter.job_key.value_or(""), filter.metric.has_value(), filter.metric.value_or("")),
        ResultFromRow, out);
  }));
  return out;
}

StatusOr<std::vector<SweepInfo>> PgJobStore::ListSweepsPage(int64_t before_id, int32_t limit) {
  RETURN_IF_ERROR(CheckPageLimit(limit));
  std::vector<SweepInfo> sweeps;
  RETURN_IF_ERROR(Transact("ListSweepsPage", [&](pqxx::transaction_base& tx) -> Status {
    ASSIGN_OR_RETURN(sweeps, ReadSweeps(tx,
                                        "WHERE ($1::bigint = 0 OR s.id < $1) "
                                        "ORDER BY s.id DESC LIMIT $2",
                                        before_id, limit));
    return absl::OkStatus();
  }));
  return sweeps;
}

StatusOr<std::vector<JobInfo>> PgJobStore::ListJobsPage(const JobFilter& filter, int64_t after_id,
                                                        int32_t limit) {
  RETURN_IF_ERROR(CheckPageLimit(limit));
  const std::string state = filter.state ? StateName(*filter.state) : "";
  std::vector<JobInfo> jobs;
  RETURN_IF_ERROR(Transact(
      "ListJobsPage",
      [&](pqxx::transaction_base& tx) -> Status {
        // A sweep's jobs walk its sweep_jobs primary key; every job walks jobs' (each job once).
        if (filter.sweep_id != 0) {
          return DecodeAll(Exec(tx,
                                "SELECT " + JobColumns() +
                                    " FROM sweep_jobs sj JOIN jobs j ON j.id = sj.job_id "
                                    "WHERE sj.sweep_id = $1 AND sj.job_id > $2 "
                                    "AND ($3 = '' OR j.state = $3) ORDER BY sj.job_id LIMIT $4",
                                filter.sweep_id, after_id, state, limit),
                           JobFromRow, jobs);
        }
        return DecodeAll(Exec(tx,
                              "SELECT " + JobColumns() +
                                  " FROM jobs j WHERE j.id > $1 AND ($2 = '' OR j.state = $2) "
                                  "ORDER BY j.id LIMIT $3",
                              after_id, state, limit),
                         JobFromRow, jobs);
      },
      Mode::kOneStatement));
  return jobs;
}

StatusOr<std::vector<JobResults>> PgJobStore::ResultsPage(int64_t sweep_id, int64_t after_job_id,
                                                          int32_t limit) {
  RETURN_IF_ERROR(CheckPageLimit(limit));
  std::vector<JobResults> out;
  RETURN_IF_ERROR(Transact(
      "ResultsPage",
      [&](pqxx::transaction_base& tx) -> Status {
        // The page's jobs first (LIMIT counts jobs, not metric rows), then their metrics; spec
        // and provenance travel on each job's first row only.
        pqxx::result r = Exec(
            tx,
            "WITH page AS ("
            "  SELECT j.id, j.job_key, j.spec, j.state, j.last_error FROM jobs j "
            "  WHERE j.id > $2 AND ($1::bigint = 0 OR EXISTS (SELECT 1 FROM sweep_jobs sj "
            "                                     WHERE sj.job_id = j.id AND sj.sweep_id = $1)) "
            "  AND (EXISTS (SELECT 1 FROM results x WHERE x.job_id = j.id) "
            "       OR (j.state = 'FAILED' AND right(j.last_error, length($3)) = $3) "
            "       OR j.state = 'SKIPPED') "
            "  ORDER BY j.id LIMIT $4), "
            "joined AS ("
            "  SELECT p.id, p.job_key, p.spec, p.state, p.last_error, r.metric, r.value, "
            "         r.stderr, r.n, r.provenance, "
            "         row_number() OVER (PARTITION BY p.id ORDER BY r.metric) AS k "
            "  FROM page p LEFT JOIN results r ON r.job_id = p.id) "
            "SELECT id AS job_id, job_key, state, metric, value, stderr, n, "
            "       CASE WHEN k = 1 THEN spec::text END AS spec, "
            "       CASE WHEN k = 1 THEN last_error END AS last_error, "
            "       CASE WHEN k = 1 THEN provenance::text END AS provenance "
            "FROM joined ORDER BY id, k",
            sweep_id, after_job_id, std::string(kDivergedSuffix), limit);
        out.clear();
        for (const pqxx::row& row : r) {
          const int64_t job_id = row["job_id"].as<int64_t>();
          if (out.empty() || out.back().job_id != job_id) {
            JobResults job;
            job.job_id = job_id;
            job.job_key = row["job_key"].as<std::string>();
            ASSIGN_OR_RETURN(job.state, StateOf(row["state"]));
            job.spec_json = row["spec"].as<std::string>();
            job.last_error = row["last_error"].as<std::string>();
            if (!row["provenance"].is_null()) {
              job.provenance_json = row["provenance"].as<std::string>();
            }
            out.push_back(std::move(job));
          }
          if (row["metric"].is_null()) continue;  // a diverged job: no stored metric
          StoredMetric m;
          m.metric = row["metric"].as<std::string>();
          m.value = row["value"].as<double>();
          m.stderr_value = row["stderr"].as<double>();
          m.n = row["n"].as<int64_t>();
          out.back().metrics.push_back(std::move(m));
        }
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return out;
}

StatusOr<std::vector<JobEventRow>> PgJobStore::Events(int64_t job_id) {
  std::vector<JobEventRow> out;
  RETURN_IF_ERROR(Transact("Events", [&](pqxx::transaction_base& tx) -> Status {
    return DecodeAll(Exec(tx,
                          "SELECT " + Us("at") +
                              " AS at_us, from_state, to_state, event, epoch, worker_id, reason "
                              "FROM job_events WHERE job_id = $1 ORDER BY id",
                          job_id),
                     EventFromRow, out);
  }));
  return out;
}

StatusOr<std::map<JobState, int64_t>> PgJobStore::CountJobsByState() {
  std::map<JobState, int64_t> counts;
  for (int i = 0; i < kNumJobStates; ++i) counts[static_cast<JobState>(i)] = 0;
  RETURN_IF_ERROR(Transact("CountJobsByState", [&](pqxx::transaction_base& tx) -> Status {
    for (const pqxx::row& row : tx.exec("SELECT state, count(*) AS n FROM jobs GROUP BY state")) {
      ASSIGN_OR_RETURN(JobState s, StateOf(row["state"]));
      counts[s] = row["n"].as<int64_t>();
    }
    return absl::OkStatus();
  }));
  return counts;
}

}  // namespace bitsweep::store::internal
