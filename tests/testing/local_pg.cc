#include "tests/testing/local_pg.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>

#include "tests/testing/paths.h"

namespace bitsweep::testing {

namespace {

// Stops the server and deletes its scratch directory when the test binary exits (ctest runs
// every test case as its own process, each with its own server, so directories would pile up).
struct OwnedServer {
  std::unique_ptr<store::LocalPostgres> pg;
  std::string scratch;

  OwnedServer() : scratch(ScratchDir("local-pg-" + std::to_string(::getpid()))) {
    store::LocalPostgresOptions options;
    options.data_dir = scratch + "/data";
    options.fsync = false;
    options.stop_with_owner = true;  // a test binary killed by ctest's timeout stops it too
    auto started = store::LocalPostgres::Start(options);
    if (!started.ok()) FAIL("cannot start a private PostgreSQL: " << started.status().ToString());
    pg = std::move(started).value();
  }
  ~OwnedServer() {
    if (pg != nullptr) pg->Stop().IgnoreError();
    pg.reset();
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
};

}  // namespace

store::LocalPostgres& LocalPg() {
  static OwnedServer server;
  return *server.pg;
}

std::string FreshDatabase() {
  static int counter = 0;
  auto conninfo = LocalPg().CreateDatabase("t" + std::to_string(++counter));
  if (!conninfo.ok()) FAIL("createdb failed: " << conninfo.status().ToString());
  return *conninfo;
}

std::unique_ptr<store::LocalPostgres> StartPostgres(const std::string& dir) {
  store::LocalPostgresOptions options;
  options.data_dir = dir + "/pg";
  options.fsync = false;
  options.stop_with_owner = true;
  auto started = store::LocalPostgres::Start(options);
  if (!started.ok()) FAIL("cannot start a private PostgreSQL: " << started.status().ToString());
  return std::move(started).value();
}

}  // namespace bitsweep::testing
