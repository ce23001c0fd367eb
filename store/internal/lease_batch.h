// LeaseMany's steps: one read of everything a batch ranks (ReadLeaseSnapshot), the choices of
// one round in C++ (PickRound), and the statement that leases them (ApplyLeases).
#pragma once

#include <cstdint>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "store/internal/lease_ranking.h"
#include "store/job_store.h"

namespace bitsweep::store::internal {

// What a batch ranks; nothing is locked while it is read.
struct LeaseSnapshot {
  std::map<int64_t, Capabilities> workers;  // the batch's registered workers
  std::map<int64_t, std::string> session_of;  // worker -> its registered session ('' = none)
  // worker -> the artifacts it holds among the candidates' (all the ranking needs of them)
  std::map<int64_t, std::set<std::string>> artifacts_of;
  std::vector<Candidate> candidates;
  std::map<int64_t, int64_t> held;  // sweep -> held jobs, as the single lease ranks them
};

// Reads the snapshot for `worker_ids` due at `latest` (the batch's latest now). Every request's
// candidate windows are read (later requests see earlier ones' windows minus what they took, so
// the windows grow by the batch size).
LeaseSnapshot ReadLeaseSnapshot(pqxx::transaction_base& tx, absl::Time latest,
                                const std::vector<int64_t>& worker_ids);

struct LeasePick {
  std::size_t request;  // index into the batch's requests
  const Candidate* job;
};

// One round: each open request in order takes its best fitting, due candidate by the lease
// ranking (RanksBefore) that neither an earlier pick (`leased`, or this round's) took nor is
// `gone`, each pick counted in its sweep's held jobs. `leased[i]`: request i's pick that landed
// in an earlier round, or nullptr.
std::vector<LeasePick> PickRound(const LeaseSnapshot& snapshot,
                                 const std::vector<LeaseRequest>& requests,
                                 const std::vector<bool>& open,
                                 const std::vector<const Candidate*>& leased,
                                 const std::set<int64_t>& gone);

// The workers whose liveness a lease records, each at its (last) request's now.
struct Liveness {
  std::vector<int64_t> workers, nows;  // nows in us
  void Saw(int64_t worker_id, absl::Time now);
};

// Leases the picks that are still free (LeaseApplyQuery) and records `live`; returns the rows of
// the jobs leased (LeasedFromRow).
pqxx::result ApplyLeases(pqxx::transaction_base& tx, const std::vector<LeaseRequest>& requests,
                         const std::vector<LeasePick>& picks, const Liveness& live);

}  // namespace bitsweep::store::internal
