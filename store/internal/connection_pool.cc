#include "store/internal/connection_pool.h"

namespace bitsweep::store::internal {

std::unique_ptr<pqxx::connection> ConnectionPool::Acquire() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (waiters_.empty() && !idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
    if (waiters_.empty() && open_ < max_) {
      ++open_;
    } else {
      Waiter me;
      waiters_.push_back(&me);
      me.cv.wait(lock, [&] { return me.ready; });
      if (me.conn != nullptr) return std::move(me.conn);
      // Handed an empty slot (its connection broke): open a new one in it.
    }
  }
  try {
    auto c = std::make_unique<pqxx::connection>(conninfo_);
    // The store runs short OLTP statements: JIT compiling one costs hundreds of milliseconds
    // (the lease query's estimate over an unanalyzed sweeps table crosses jit_above_cost) and
    // never pays off.
    c->set_variable("jit", "off");
    return c;
  } catch (...) {
    Release(nullptr);
    throw;
  }
}

void ConnectionPool::Release(std::unique_ptr<pqxx::connection> c) {
  std::lock_guard<std::mutex> lock(mu_);
  if (c != nullptr && !c->is_open()) c.reset();
  if (!waiters_.empty()) {
    Waiter* next = waiters_.front();
    waiters_.pop_front();
    next->conn = std::move(c);
    next->ready = true;
    next->cv.notify_one();
  } else if (c != nullptr) {
    idle_.push_back(std::move(c));
  } else {
    --open_;
  }
}

void ConnectionPool::DiscardIdle() {
  std::vector<std::unique_ptr<pqxx::connection>> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_ -= static_cast<int>(idle_.size());
    dropped.swap(idle_);
  }
  // Closed outside the lock: closing a connection whose peer is gone may take a moment.
}

}  // namespace bitsweep::store::internal
