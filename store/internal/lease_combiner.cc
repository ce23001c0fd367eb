#include "store/internal/lease_combiner.h"

#include "store/pg_status.h"

namespace bitsweep::store::internal {

LeaseCombiner::Result LeaseCombiner::Lease(const LeaseRequest& request) {
  Call me{request, std::optional<LeasedJob>(), false, {}};
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&me);
  while (!me.done) {
    if (leader_) {
      me.cv.wait(lock);
      continue;
    }
    leader_ = true;
    std::vector<Call*> batch;
    while (!queue_.empty() && batch.size() < kMaxLeaseBatch) {
      batch.push_back(queue_.front());
      queue_.pop_front();
    }
    lock.unlock();
    // Nothing may escape between here and the hand-over below: a leader that left by an
    // exception would leave every later Lease waiting for ever.
    try {
      std::vector<LeaseRequest> requests;
      for (const Call* c : batch) requests.push_back(c->request);
      std::vector<Result> results = serve_(requests);
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = std::move(results.at(i));
    } catch (...) {
      const Status st = StatusFromCurrentException("Lease");
      for (Call* c : batch) c->result = st;
    }
    lock.lock();
    for (Call* c : batch) {
      c->done = true;
      if (c != &me) c->cv.notify_one();
    }
    leader_ = false;
    // The oldest waiting call leads next (only it is woken, not every waiter).
    if (!queue_.empty()) queue_.front()->cv.notify_one();
  }
  return std::move(me.result);
}

}  // namespace bitsweep::store::internal
