// Flat combining of concurrent Lease calls: the caller that finds no leader becomes it and serves
// everything queued (up to kMaxLeaseBatch) with one batch, while later callers queue behind it.
// Leases in a process never contend with each other for rows, and under load one statement
// plans and scans candidates for a whole batch.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "store/job_store.h"

namespace bitsweep::store::internal {

// The most concurrent Lease calls one batch serves.
inline constexpr std::size_t kMaxLeaseBatch = 64;

class LeaseCombiner {
 public:
  using Result = StatusOr<std::optional<LeasedJob>>;
  // Serves a batch of 1..kMaxLeaseBatch requests: result i answers requests[i].
  using ServeBatch = std::function<std::vector<Result>(const std::vector<LeaseRequest>&)>;

  explicit LeaseCombiner(ServeBatch serve) : serve_(std::move(serve)) {}

  // Blocks until a leader (this caller or another) has served `request`.
  Result Lease(const LeaseRequest& request);

 private:
  // A Lease call waiting to be served.
  struct Call {
    LeaseRequest request;
    Result result;
    bool done = false;
    std::condition_variable cv;  // woken when done, or when it is to lead the next batch
  };

  const ServeBatch serve_;
  std::mutex mu_;
  std::deque<Call*> queue_;  // guarded by mu_
  bool leader_ = false;      // guarded by mu_
};

}  // namespace bitsweep::store::internal
