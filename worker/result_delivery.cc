#include "worker/result_delivery.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "worker/lease_keeper.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

bool Fenced(const Status& s) {
  return s.code() == absl::StatusCode::kFailedPrecondition ||
         s.code() == absl::StatusCode::kNotFound;
}

}  // namespace

Delivery DeliverResult(const DeliveryContext& c, const SpooledResult& r) {
  auto log = [&](const std::string& message) {
    if (c.log) c.log(message);
  };
  auto discard = [&](const std::string& reason, const std::string& why) {
    log(absl::StrCat("job ", r.lease.job_id, " complete: ", why, "; discarding its result (epoch ",
                     r.lease.lease_epoch, ")"));
    if (c.metrics != nullptr) c.metrics->CountDiscardedResult(reason);
    if (Status removed = c.spool->Remove(r); !removed.ok()) log(removed.ToString());
  };
  // Heartbeats keep the lease while Complete is retried. A cancel request changes nothing: a
  // Complete after one lands the job in CANCELED, as the coordinator's table says.
  LeaseKeeper keeper(
      c.lease_ttl_seconds,
      [&](const ChildProgress&) {
        return c.client->Heartbeat(r.lease, 1.0, "delivering the result");
      },
      c.clock, nullptr, c.metrics);
  Clock::Duration backoff = kCompleteRetryFirst;
  Clock::TimePoint next_try = c.clock->Now();
  for (int tries = 0;; ) {
    if (c.clock->Now() >= next_try) {
      const Status s = c.client->Complete(r.lease, r.metrics, r.provenance_json, r.log_tail);
      ++tries;
      if (s.ok()) {
        if (Status removed = c.spool->Remove(r); !removed.ok()) log(removed.ToString());
        if (tries > 1) log(absl::StrCat("job ", r.lease.job_id, ": delivered after ", tries,
                                        " tries"));
        return Delivery::kDelivered;
      }
      if (Fenced(s)) {
        discard("fenced", s.ToString());
        return Delivery::kFenced;
      }
      if (s.code() == absl::StatusCode::kInvalidArgument) {
        const Status failed = c.client->Fail(
            r.lease, absl::StrCat("the coordinator refused the result: ", s.message()), false,
            r.log_tail);
        discard("refused", s.ToString() + (failed.ok() ? "" : "; Fail: " + failed.ToString()));
        return Delivery::kRefused;
      }
      if (tries == 1 || tries % 10 == 0) {
        log(absl::StrCat("job ", r.lease.job_id, ": Complete not taken yet (", s.ToString(),
                         "); retrying while the lease lasts"));
      }
      if (c.metrics != nullptr) c.metrics->CountCompleteRetry();
      next_try = c.clock->Now() + backoff;
      backoff = std::min<Clock::Duration>(2 * backoff, kCompleteRetryMax);
    }
    keeper.Tick([] { return ChildProgress{1.0, "delivering the result"}; });
    if (keeper.lost()) {
      discard("fenced", "a heartbeat found the lease fenced");
      return Delivery::kFenced;
    }
    if (c.stop != nullptr && *c.stop) {
      log(absl::StrCat("job ", r.lease.job_id, ": stopping; its result stays in ",
                       c.spool->dir(), " for the next start"));
      return Delivery::kStopped;
    }
    c.clock->SleepFor(kJobPollInterval);
  }
}

}  // namespace bitsweep::worker
