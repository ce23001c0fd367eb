// A bounded, first-come-first-served pool of PostgreSQL connections for the store.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <vector>

namespace bitsweep::store::internal {

// Callers beyond max_connections queue in arrival order (a plain condition variable lets some
// waiters starve, which shows as a lease p99 far above the p50). Connections that broke are
// dropped, so the next caller reconnects. Thread-safe.
class ConnectionPool {
 public:
  ConnectionPool(std::string conninfo, int max) : conninfo_(std::move(conninfo)), max_(max) {}

  // An idle connection, a new one, or (at max) the next one released. Throws what
  // pqxx::connection throws (broken_connection when the server is down).
  std::unique_ptr<pqxx::connection> Acquire();

  // nullptr (or a closed connection) gives the slot back without keeping the connection.
  void Release(std::unique_ptr<pqxx::connection> c);

  // Closes every idle connection (their slots become free): called when one connection was
  // found broken, since a server restart breaks them all at once. Connections lent out are
  // dropped when they come back broken.
  void DiscardIdle();

 private:
  struct Waiter {
    std::condition_variable cv;
    bool ready = false;
    std::unique_ptr<pqxx::connection> conn;
  };
  const std::string conninfo_;
  const int max_;
  std::mutex mu_;
  std::deque<Waiter*> waiters_;                          // guarded by mu_
  std::vector<std::unique_ptr<pqxx::connection>> idle_;  // guarded by mu_
  int open_ = 0;                                         // guarded by mu_, idle or lent
};

}  // namespace bitsweep::store::internal
