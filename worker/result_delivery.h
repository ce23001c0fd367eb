// DeliverResult: gets one spooled result (worker/result_spool.h) to the coordinator. Complete is
// tried until the coordinator answers for good, with exponential backoff (kCompleteRetryFirst
// doubling up to kCompleteRetryMax) on every other answer: UNAVAILABLE, DEADLINE_EXCEEDED,
// ABORTED, INTERNAL, RESOURCE_EXHAUSTED, UNKNOWN... (the coordinator restarting, its database
// down or failing over, a network cut). Meanwhile a LeaseKeeper heartbeats the lease, so that
// the lease stays valid for as long as the coordinator lets it (it holds its reaper for a lease
// TTL after an outage: server/lease_reaper.h). The answers for good:
//   OK                                  delivered; the spooled file is removed.
//   FAILED_PRECONDITION or NOT_FOUND    (from Complete or a heartbeat) the lease was fenced or
//                                       the job is gone: another attempt owns it. The result is
//                                       discarded: a log line and
//                                       bitsweep_worker_results_discarded_total{reason="fenced"}.
//   INVALID_ARGUMENT                    the coordinator will never take this result; the job is
//                                       failed (not retryable) and the result discarded
//                                       (reason="refused").
// The worker's shutdown (*stop) ends the loop with the result still in the spool: the next
// worker on this state directory delivers it.
//
// Time comes from the injected clock, so tests run the backoff on a ManualClock.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "common/status.h"
#include "worker/clock.h"
#include "worker/coordinator_client.h"
#include "worker/result_spool.h"

namespace bitsweep::worker {

class WorkerMetrics;

inline constexpr std::chrono::milliseconds kCompleteRetryFirst{250};
inline constexpr std::chrono::seconds kCompleteRetryMax{15};

enum class Delivery {
  kDelivered,  // the coordinator took it
  kFenced,     // discarded: the lease was fenced
  kRefused,    // discarded: the coordinator refused it (INVALID_ARGUMENT); the job was failed
  kStopped,    // the worker is stopping: left in the spool
};

struct DeliveryContext {
  CoordinatorClient* client = nullptr;
  ResultSpool* spool = nullptr;
  Clock* clock = nullptr;
  const std::atomic<bool>* stop = nullptr;  // may be null
  WorkerMetrics* metrics = nullptr;         // may be null
  double lease_ttl_seconds = kDefaultLeaseTtlSeconds;
  std::function<void(const std::string&)> log;  // may be empty
};

Delivery DeliverResult(const DeliveryContext& context, const SpooledResult& result);

}  // namespace bitsweep::worker
