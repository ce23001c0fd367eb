#include "worker/lease_keeper.h"

#include <algorithm>

#include "worker/metrics.h"

namespace bitsweep::worker {

LeaseKeeper::LeaseKeeper(double lease_ttl_seconds, HeartbeatFn heartbeat, Clock* clock,
                         const std::atomic<bool>* stop, WorkerMetrics* metrics)
    : heartbeat_(std::move(heartbeat)),
      clock_(clock),
      stop_(stop),
      metrics_(metrics),
      interval_(std::min<Clock::Duration>(
          std::chrono::duration_cast<Clock::Duration>(
              std::chrono::duration<double>(lease_ttl_seconds / kHeartbeatsPerLease)),
          kMaxHeartbeatInterval)),
      next_beat_(clock->Now() + interval_) {}

LeaseKeeper::Action LeaseKeeper::Tick(const ProgressFn& progress) {
  const Clock::TimePoint now = clock_->Now();
  Action action;
  action.kill = now >= kill_deadline_;
  if (lost_ || now < next_beat_) return action;
  const StatusOr<bool> answer = heartbeat_(progress());
  const bool fenced = answer.status().code() == absl::StatusCode::kFailedPrecondition;
  const bool cancel = answer.ok() && *answer;
  next_beat_ = now + (answer.ok() ? interval_ : heartbeat_retry_delay());
  if (metrics_ != nullptr)
    metrics_->CountHeartbeat(answer.ok() ? "ok" : fenced ? "fenced" : "error");
  if (fenced || cancel || (stop_ != nullptr && *stop_)) {
    lost_ = fenced;
    canceled_ = cancel;
    action.terminate = true;
    action.reason = fenced ? "lease lost" : cancel ? "canceled" : "shutdown";
    // The first stop starts the grace period; later heartbeats that say so again do not
    // extend it.
    kill_deadline_ = std::min(kill_deadline_, now + kJobKillGrace);
  }
  return action;
}

}  // namespace bitsweep::worker
