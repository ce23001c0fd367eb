// The lease statements. Each is built once from the ranking (lease_ranking.h), the transition
// table and SetClause, and prepared once per connection (Exec).
#pragma once

#include <string>

namespace bitsweep::store::internal {

// The single-statement lease: candidate windows, ranking, `FOR UPDATE SKIP LOCKED`, the
// guarded transition, its job_events row and the worker's liveness in one round trip.
// $1 now (us), $2 worker id, $3 lease deadline (us), $4 request id ("" = none). Always one row: workers_seen 0 for an
// unregistered worker; id NULL when nothing was leased; else the leased job (LeasedFromRow).
const std::string& LeaseOneQuery();

// LeaseMany's read, one statement whose rows are of the kinds below (column `kind`).
// $1 now (us; the batch's latest, each request checks its own), $2 worker ids, $3 sweep window,
// $4 artifact window, $5 artifacts per worker.
const std::string& LeaseSnapshotQuery();
enum SnapshotRowKind {
  kWorkerRow = 0,          // id (the worker), devices, memory_gb, tp
  kCandidateRow = 1,       // id, sweep_id, priority, artifact_key, devices, memory_gb, tp,
                           // not_before_us
  kHeldRow = 2,            // sweep_id, held
  kWorkerArtifactRow = 3,  // id (the worker), artifact_key: one the worker holds among the
                           // candidates' (all the ranking needs)
};

// LeaseMany's transitions in one statement: locks the picks that are still pending and that
// nobody else holds (SKIP LOCKED), LEASEs them with their job_events rows, and records the
// liveness of the batch's workers. A pick not returned was taken by someone else. $1 jobs,
// $2 their workers, $3 deadlines (us), $4 nows (us), $5 workers alive, $6 their nows (us),
// $7 their request ids ("" = none).
// Rows: the leased jobs (LeasedFromRow).
const std::string& LeaseApplyQuery();

}  // namespace bitsweep::store::internal
