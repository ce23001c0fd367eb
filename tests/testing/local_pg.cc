#include "tests/testing/local_pg.h"

#include <catch2/catch.hpp>
#include <memory>

#include "tests/testing/paths.h"

namespace bitsweep::testing {

store::LocalPostgres& LocalPg() {
  static std::unique_ptr<store::LocalPostgres> pg = [] {
    store::LocalPostgresOptions options;
    options.data_dir = ScratchDir("local-pg-" + std::to_string(::getpid())) + "/data";
    options.fsync = false;
    auto started = store::LocalPostgres::Start(options);
    if (!started.ok()) FAIL("cannot start a private PostgreSQL: " << started.status().ToString());
    return std::move(started).value();
  }();
  return *pg;
}

std::string FreshDatabase() {
  static int counter = 0;
  auto conninfo = LocalPg().CreateDatabase("t" + std::to_string(++counter));
  if (!conninfo.ok()) FAIL("createdb failed: " << conninfo.status().ToString());
  return *conninfo;
}

}  // namespace bitsweep::testing
