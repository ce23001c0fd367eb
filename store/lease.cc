// Lease: concurrent calls are combined (LeaseCombiner); a call alone is one statement
// (LeaseOneQuery), a batch is LeaseMany: one read, the ranking in C++, one write. Both rank by
// store/internal/lease_ranking.h.
#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

#include "store/internal/lease_batch.h"
#include "store/internal/lease_sql.h"
#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

namespace {

// The lease's fields of a job row (columns id, lease_epoch, attempt, job_key, artifact_key,
// spec); the deadline as stored, in microseconds.
LeasedJob LeasedFields(const pqxx::row& row, int64_t deadline_micros) {
  LeasedJob l;
  l.job_id = row["id"].as<int64_t>();
  l.epoch = row["lease_epoch"].as<int64_t>();
  l.attempt = row["attempt"].as<int32_t>();
  l.job_key = row["job_key"].as<std::string>();
  l.artifact_key = row["artifact_key"].as<std::string>();
  l.spec_json = row["spec"].as<std::string>();
  l.deadline = FromMicros(deadline_micros);
  return l;
}

// A row of the leased jobs both lease statements return (the columns above and from_state,
// to_state).
StatusOr<LeasedJob> LeasedFromRow(const pqxx::row& row, absl::Time deadline) {
  RETURN_IF_ERROR(CheckedMove("Lease", row, JobEvent::kLease).status());
  return LeasedFields(row, Micros(deadline));
}

Status NotRegistered(int64_t worker_id) {
  return absl::NotFoundError("Lease: worker " + std::to_string(worker_id) + " is not registered");
}

Status WrongSession(int64_t worker_id) {
  return absl::FailedPreconditionError("Lease: worker " + std::to_string(worker_id) +
                                       " is registered under another session");
}

}  // namespace

StatusOr<std::optional<LeasedJob>> PgJobStore::Lease(int64_t worker_id, absl::Time now,
                                                     absl::Duration ttl,
                                                     const std::string& request_id,
                                                     const std::string& session) {
  if (ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("Lease: ttl <= 0");
  return leases_.Lease({worker_id, now, ttl, request_id, session});
}

// The replay lookup runs inside the combiner's batch, not before it: batches of one coordinator
// are served one after another, so a retry sent while its original is still being served finds
// the original's lease once it is its turn.
std::vector<StatusOr<std::optional<LeasedJob>>> PgJobStore::ServeLeases(
    const std::vector<LeaseRequest>& requests) {
  using Result = StatusOr<std::optional<LeasedJob>>;
  std::vector<Result> results(requests.size(), std::optional<LeasedJob>());
  std::map<std::size_t, LeasedJob> replayed;
  const bool keyed = std::any_of(requests.begin(), requests.end(),
                                 [](const LeaseRequest& q) { return !q.request_id.empty(); });
  if (keyed) {
    StatusOr<std::map<std::size_t, LeasedJob>> found = LeaseReplays(requests);
    if (!found.ok()) return std::vector<Result>(requests.size(), found.status());
    replayed = *std::move(found);
  }
  // The requests to lease anew; a (worker, request id, session) repeated within the batch is
  // leased once and its copies get the same answer.
  std::vector<LeaseRequest> fresh;
  std::vector<std::size_t> fresh_index(requests.size(), requests.size());
  std::map<std::tuple<int64_t, std::string, std::string>, std::size_t> first;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const LeaseRequest& q = requests[i];
    if (auto r = replayed.find(i); r != replayed.end()) {
      results[i] = std::optional<LeasedJob>(r->second);
      continue;
    }
    if (!q.request_id.empty()) {
      auto [it, inserted] = first.emplace(std::make_tuple(q.worker_id, q.request_id, q.session),
                                          fresh.size());
      if (!inserted) {
        fresh_index[i] = it->second;
        continue;
      }
    }
    fresh_index[i] = fresh.size();
    fresh.push_back(q);
  }
  if (fresh.empty()) return results;
  std::vector<Result> leased =
      fresh.size() == 1 ? std::vector<Result>{LeaseOne(fresh[0])} : LeaseMany(fresh);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (fresh_index[i] < fresh.size()) results[i] = leased[fresh_index[i]];
  }
  return results;
}

StatusOr<std::map<std::size_t, LeasedJob>> PgJobStore::LeaseReplays(
    const std::vector<LeaseRequest>& requests) {
  // The literal states match the partial index jobs_lease_request.
  static const std::string* const query = new std::string(
      "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], "
      "  $5::text[]) AS r(worker_id, request_id, deadline, now, session) "
      "  WHERE r.request_id <> '') "
      "UPDATE jobs SET lease_deadline = " +
      TsOf("r.deadline") + ", renewed_at = " + TsOf("r.now") +
      " FROM r WHERE jobs.worker_id = r.worker_id AND jobs.lease_request_id = r.request_id "
      "AND jobs.lease_request_id IS NOT NULL AND jobs.state IN ('LEASED', 'CANCEL_REQUESTED') "
      // Only the session the worker registered under replays its lease (a wrong one goes on to
      // a fresh lease, which refuses it).
      "AND coalesce((SELECT session FROM workers hw WHERE hw.id = jobs.worker_id), '') = "
      "r.session "
      "RETURNING jobs.id, jobs.worker_id, jobs.lease_request_id, jobs.lease_epoch, jobs.attempt, "
      "jobs.job_key, jobs.artifact_key, jobs.spec::text AS spec");
  std::vector<int64_t> workers, deadlines, nows;
  std::vector<std::string> ids, sessions;
  for (const LeaseRequest& q : requests) {
    workers.push_back(q.worker_id);
    ids.push_back(q.ttl > absl::ZeroDuration() ? q.request_id : "");
    sessions.push_back(q.session);
    deadlines.push_back(Micros(q.now + q.ttl));
    nows.push_back(Micros(q.now));
  }
  std::map<std::size_t, LeasedJob> out;
  RETURN_IF_ERROR(Transact(
      "Lease",
      [&](pqxx::transaction_base& tx) -> Status {
        out.clear();
        for (const pqxx::row& row : Exec(tx, *query, NumberArray(workers), TextArray(ids),
                                         NumberArray(deadlines), NumberArray(nows),
                                         TextArray(sessions))) {
          const int64_t worker = row["worker_id"].as<int64_t>();
          const std::string id = row["lease_request_id"].as<std::string>();
          for (std::size_t i = 0; i < requests.size(); ++i) {
            if (requests[i].worker_id != worker || requests[i].request_id != id) continue;
            out.emplace(i, LeasedFields(row, deadlines[i]));
          }
        }
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return out;
}

StatusOr<std::optional<LeasedJob>> PgJobStore::LeaseOne(const LeaseRequest& q) {
  std::optional<LeasedJob> leased;
  RETURN_IF_ERROR(Transact(
      "Lease",
      [&](pqxx::transaction_base& tx) -> Status {
        leased.reset();
        pqxx::result r =
            Exec(tx, LeaseOneQuery(), Micros(q.now), q.worker_id, Micros(q.now + q.ttl),
                 q.request_id, q.session);
        if (r.size() != 1) return absl::InternalError("Lease: expected one row");
        if (r[0]["workers_known"].as<int64_t>() == 0) return NotRegistered(q.worker_id);
        if (r[0]["workers_seen"].as<int64_t>() == 0) return WrongSession(q.worker_id);
        if (r[0]["id"].is_null()) return absl::OkStatus();
        ASSIGN_OR_RETURN(leased, LeasedFromRow(r[0], q.now + q.ttl));
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
  // 1. One read; nothing is locked yet.
  LeaseSnapshot snapshot;
  Status st = Transact(
      "Lease",
      [&](pqxx::transaction_base& tx) -> Status {
        snapshot = ReadLeaseSnapshot(tx, latest, ids);
        return absl::OkStatus();
      },
      Mode::kOneStatement);
  if (!st.ok()) return fail_open(st);
  Liveness live;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (!results[i].ok()) continue;
    if (!snapshot.workers.count(requests[i].worker_id)) {
      results[i] = NotRegistered(requests[i].worker_id);
      continue;
    }
    if (snapshot.session_of[requests[i].worker_id] != requests[i].session) {
      results[i] = WrongSession(requests[i].worker_id);
      continue;
    }
    live.Saw(requests[i].worker_id, requests[i].now);
  }

  // 2. Each request in order takes its best candidate (PickRound), counting earlier picks. One
  //    statement then locks (SKIP LOCKED) and leases the picks and records the workers'
  //    liveness. A pick someone else took meanwhile (another coordinator, a cancel) is dropped
  //    and the requests still open choose again around it.
  std::vector<const Candidate*> leased(requests.size(), nullptr);
  std::set<int64_t> gone;
  for (int round = 0; round < 4; ++round) {
    std::vector<bool> open(requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      open[i] = results[i].ok() && leased[i] == nullptr;
    }
    const std::vector<LeasePick> picks = PickRound(snapshot, requests, open, leased, gone);
    if (picks.empty() && round > 0) break;  // liveness was recorded in round 0
    pqxx::result r;
    st = Transact(
        "Lease",
        [&](pqxx::transaction_base& tx) -> Status {
          r = ApplyLeases(tx, requests, picks, live);
          return absl::OkStatus();
        },
        Mode::kOneStatement);
    if (!st.ok()) return fail_open(st);
    live = {};
    std::map<int64_t, LeasePick> pick_of;  // job -> its pick, until it is seen leased
    for (const LeasePick& p : picks) pick_of.emplace(p.job->id, p);
    for (const pqxx::row& row : r) {
      const LeasePick p = pick_of.at(row["id"].as<int64_t>());
      const LeaseRequest& q = requests[p.request];
      StatusOr<LeasedJob> l = LeasedFromRow(row, q.now + q.ttl);
      if (!l.ok()) return fail_open(l.status());
      results[p.request] = std::optional<LeasedJob>(*std::move(l));
      leased[p.request] = p.job;
      pick_of.erase(p.job->id);
    }
    if (pick_of.empty()) break;
    for (const auto& [job, pick] : pick_of) gone.insert(job);
  }
  return results;
}

}  // namespace bitsweep::store::internal
