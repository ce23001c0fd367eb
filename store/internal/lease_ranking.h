// What a lease may choose and in which order: the one definition both lease paths use. The
// single-statement lease (store/lease.cc) gets its candidate windows, fit test and ORDER BY as
// SQL generated here; LeaseMany (store/internal/lease_batch.cc) reads the same windows and ranks
// in C++ with the same fit test and the same ranking terms.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "store/job_store.h"

namespace bitsweep::store::internal {

// Candidates: the first kLeaseWindow due, fitting jobs of every sweep (by priority, then age)
// plus the first kAffinityWindow on each artifact the worker holds, each an index range scan
// instead of a sort of every pending job. A row is locked only while a Lease transaction runs
// (then it leaves the pending index), so the window need only exceed the number of concurrent
// Lease transactions (the connection pools of all coordinators) for locked rows never to hide
// a free job; a window that is too small only makes a worker ask again, never double-leases.
inline constexpr int kLeaseWindow = 64;
// Affinity only reorders; it need not see past the first few jobs of each held artifact.
inline constexpr int kAffinityWindow = 16;
// LeaseMany's affinity windows cover each worker's most recently gained artifacts only (a
// worker that ran hundreds of jobs holds hundreds of artifacts, and a window for each would cost
// more than the rest of the batch).
inline constexpr int kBatchAffinityArtifacts = 4;

// `(SELECT c.id FROM jobs c WHERE <where> AND <pending, due, fits w> ORDER BY ... LIMIT <limit>)`:
// one candidate window over job alias c for the capabilities of alias w, due at `now_sql`, in
// the order of the pending partial indexes (priority, then age).
std::string CandidateWindowSql(const std::string& where, const std::string& limit,
                               const std::string& now_sql);

// `SELECT sweep_id, n FROM ...`: the jobs each sweep holds (LEASED or CANCEL_REQUESTED), the
// ranking's fairness term.
std::string HeldPerSweepSql();

// A pending job as LeaseMany's ranking sees it.
struct Candidate {
  int64_t id = 0, sweep_id = 0;
  int32_t priority = 0;
  std::string artifact_key;
  Capabilities needs;
  absl::Time not_before;
};
// Whether `job` is due at `now` and fits a worker offering `offer` (see Capabilities); the C++
// twin of the test CandidateWindowSql() applies.
bool Fits(const Candidate& job, const Capabilities& offer, absl::Time now);

// What the ranking compares about a candidate for one worker.
struct RankFacts {
  int32_t priority = 0;
  bool holds_artifact = false;  // the worker holds the job's (non-empty) artifact
  int64_t sweep_held = 0;       // jobs its sweep holds (LEASED, CANCEL_REQUESTED) so far
  int64_t job_id = 0;           // age: ids grow with submission
};
// True when `a` is leased before `b`: priority, a held artifact, the sweep with the fewest held
// jobs, age (kLeaseRanking in store/internal/lease_ranking.cc).
bool RanksBefore(const RankFacts& a, const RankFacts& b);
// The same ranking as an SQL ORDER BY list over job alias j, the held count alias h (n) of its
// sweep and the worker id $2.
std::string LeaseOrderBySql();

}  // namespace bitsweep::store::internal
