// The store's connection pool across a PostgreSQL restart, against the test's private server.
#include <catch2/catch.hpp>
#include <chrono>
#include <pqxx/pqxx>
#include <thread>
#include <vector>

#include "store/job_store.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/poll.h"

namespace bitsweep::store {
namespace {

int WaitingForLocks(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::nontransaction tx(c);
  return tx.exec("SELECT count(*) FROM pg_locks WHERE NOT granted").at(0)[0].as<int>();
}

TEST_CASE("after a PostgreSQL restart the first call succeeds however many pooled connections "
          "it broke",
          "[pg][fault]") {
  const std::string conninfo = testing::FreshDatabase();
  JobStoreOptions options;
  options.max_connections = 4;
  auto opened = JobStore::Open(conninfo, options);
  REQUIRE(opened.ok());
  std::unique_ptr<JobStore> store = std::move(opened).value();

  // Four calls blocked at once behind a table lock hold four pooled connections; all four are
  // idle in the pool once the lock goes.
  {
    pqxx::connection locker(conninfo);
    pqxx::work lock(locker);
    lock.exec("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE");
    std::vector<std::thread> calls;
    for (int i = 0; i < 4; ++i) {
      calls.emplace_back([&] { CHECK(store->CountJobsByState().ok()); });
    }
    REQUIRE(testing::WaitUntil([&] { return WaitingForLocks(conninfo) >= 4; },
                               std::chrono::seconds(30)));
    lock.abort();
    for (auto& t : calls) t.join();
  }

  REQUIRE(testing::LocalPg().Restart().ok());
  // Every pooled connection is dead now. The first call finds one broken, drops the others
  // and succeeds on a new one; so does every call after it.
  for (int i = 0; i < 4; ++i) {
    const Status s = store->CountJobsByState().status();
    INFO("call " << i << ": " << s.ToString());
    CHECK(s.ok());
  }
}

}  // namespace
}  // namespace bitsweep::store
