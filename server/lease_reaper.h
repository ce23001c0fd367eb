// The lease reaper's rule for when it may expire leases: only when the worker could have renewed
// the lease and did not, so that an outage of the coordinator does not take jobs from live workers.
// A lease deadline that passes while no heartbeat could land says nothing about the worker: while
// the coordinator is down, or cannot reach its database, every heartbeat fails. So the reaper
// expires nothing for one grace period (the lease TTL) after the coordinator starts and after the
// database comes back from an outage; a live worker heartbeats within that time (every TTL/3, and
// sooner after a failed heartbeat), renews its lease, and keeps its job.
//
// LeaseGrace is pure (time is a parameter); ReapOnce is one tick of the coordinator's reaper
// thread. Neither is thread-safe: the reaper thread owns its LeaseGrace.
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "common/status.h"
#include "store/job_store.h"

namespace bitsweep::server {

class LeaseGrace {
 public:
  // Holds the reaper until `start` + `grace`.
  LeaseGrace(absl::Duration grace, absl::Time start)
      : grace_(grace), hold_until_(start + grace) {}

  // Whether leases may be expired at `now`: the database is reachable as far as the last
  // Observe knows, and no grace period is running.
  bool MayExpire(absl::Time now) const { return !lost_ && now >= hold_until_; }
  // The outcome of the reaper's database call at `now` (false: UNAVAILABLE). The first success
  // after a failure starts a new grace period at `now`.
  void Observe(bool reached, absl::Time now);
  absl::Time hold_until() const { return hold_until_; }

 private:
  absl::Duration grace_;
  absl::Time hold_until_;
  bool lost_ = false;
};

// One reaper tick at `now`: JobStore::ExpireLeases(now) when `grace` allows, else
// JobStore::Ping() (so that an outage is noticed while held); the outcome goes to `grace`.
// Returns how many leases expired (0 while held), or the store's error.
StatusOr<int64_t> ReapOnce(store::JobStore& store, LeaseGrace& grace, absl::Time now);

}  // namespace bitsweep::server
