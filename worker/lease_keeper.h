// LeaseKeeper: keeps one job's lease while its process runs, so that the coordinator does not hand
// a running job to another worker (its time comes from worker/clock.h, for tests). The worker calls
// Tick() every kJobPollInterval until the job process exits; every heartbeat interval (a third of
// the lease TTL, so that two lost heartbeats still leave the lease alive, and at most
// kMaxHeartbeatInterval, so that progress moves and a cancel lands within seconds: one small UPDATE
// per running job every 2 s) Tick sends a heartbeat with the process's progress. A heartbeat that
// failed (any error but FAILED_PRECONDITION) is sent again a quarter of an interval later, not a
// whole one: after an outage the lease is renewed soon after the coordinator can take it, well
// within the grace its reaper gives (server/lease_reaper.h). A heartbeat answered
// FAILED_PRECONDITION (the lease was taken away: "fenced"), one answered cancel_requested, or the
// worker's shutdown (*stop) asks the process to stop (SIGTERM) and, kJobKillGrace later, to die
// (SIGKILL). Once the lease is lost no heartbeat is sent any more and the job's work is to be
// discarded.
//
// Time comes from the injected clock only, so tests drive it with a ManualClock and a heartbeat
// function of their own, without a coordinator or a process. Not thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string_view>

#include "common/status.h"
#include "worker/clock.h"
#include "worker/job_process.h"

namespace bitsweep::worker {

class WorkerMetrics;

inline constexpr int kHeartbeatsPerLease = 3;            // heartbeat interval = lease TTL / this
inline constexpr std::chrono::seconds kMaxHeartbeatInterval{2};  // ... or this when shorter
inline constexpr int kHeartbeatRetriesPerInterval = 4;   // retry delay = heartbeat interval / this
inline constexpr std::chrono::seconds kJobKillGrace{5};  // from SIGTERM to SIGKILL
inline constexpr std::chrono::milliseconds kJobPollInterval{100};  // how often Tick is called

class LeaseKeeper {
 public:
  // One heartbeat with the process's progress: whether a client asked to cancel the job, or the
  // call's error (CoordinatorClient::Heartbeat).
  using HeartbeatFn = std::function<StatusOr<bool>(const ChildProgress& progress)>;
  using ProgressFn = std::function<ChildProgress()>;

  // What to do to the job process now.
  struct Action {
    bool kill = false;             // SIGKILL: the grace after a stop request has passed
    bool terminate = false;        // SIGTERM: stop now
    std::string_view reason = "";  // with terminate: "lease lost", "canceled" or "shutdown"
  };

  // The first heartbeat is due one interval after construction. `clock` must outlive the
  // keeper; `stop` and `metrics` (bitsweep_worker_heartbeats_total) may be null.
  LeaseKeeper(double lease_ttl_seconds, HeartbeatFn heartbeat, Clock* clock,
              const std::atomic<bool>* stop, WorkerMetrics* metrics);

  // Sends the heartbeat when it is due (reading `progress` only then) and says what to do.
  Action Tick(const ProgressFn& progress);

  // The lease was lost: another attempt owns the job now.
  bool lost() const { return lost_; }
  // The latest heartbeat that asked the process to stop carried cancel_requested.
  bool canceled() const { return canceled_; }
  Clock::Duration heartbeat_interval() const { return interval_; }
  // How long after a failed heartbeat the next one is sent.
  Clock::Duration heartbeat_retry_delay() const { return interval_ / kHeartbeatRetriesPerInterval; }

 private:
  HeartbeatFn heartbeat_;
  Clock* clock_;
  const std::atomic<bool>* stop_;
  WorkerMetrics* metrics_;
  Clock::Duration interval_;
  Clock::TimePoint next_beat_;
  Clock::TimePoint kill_deadline_ = Clock::TimePoint::max();
  bool lost_ = false;
  bool canceled_ = false;
};

}  // namespace bitsweep::worker
