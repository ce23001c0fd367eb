#include "server/lease_reaper.h"

#include <algorithm>

namespace bitsweep::server {

void LeaseGrace::Observe(bool reached, absl::Time now) {
  if (!reached) {
    lost_ = true;
    return;
  }
  if (lost_) hold_until_ = std::max(hold_until_, now + grace_);
  lost_ = false;
}

StatusOr<int64_t> ReapOnce(store::JobStore& store, LeaseGrace& grace, absl::Time now) {
  StatusOr<int64_t> expired = int64_t{0};
  if (grace.MayExpire(now)) {
    expired = store.ExpireLeases(now);
  } else {
    Status ping = store.Ping();
    if (!ping.ok()) expired = ping;
  }
  // Only UNAVAILABLE says the database is out of reach; ABORTED, say, came from it.
  grace.Observe(expired.status().code() != absl::StatusCode::kUnavailable, now);
  return expired;
}

}  // namespace bitsweep::server
