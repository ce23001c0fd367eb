// The database's identity (store/schema/004_cluster.sql).
#include <catch2/catch.hpp>

#include "store/job_store.h"
#include "tests/testing/local_pg.h"

namespace bitsweep::store {
namespace {

TEST_CASE("each database has its own cluster id, the same for every store opened on it", "[pg]") {
  const std::string db = testing::FreshDatabase();
  auto a = JobStore::Open(db);
  auto b = JobStore::Open(db);
  auto other = JobStore::Open(testing::FreshDatabase());
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(other.ok());
  auto id = (*a)->ClusterId();
  REQUIRE(id.ok());
  CHECK(id->size() == 32);
  CHECK(*(*b)->ClusterId() == *id);
  CHECK(*(*other)->ClusterId() != *id);
}

}  // namespace
}  // namespace bitsweep::store
