#include "store/local_postgres.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "store/migrations.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"

namespace bitsweep::store {
namespace {

int Ping(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  return tx.exec("SELECT 41 + 1").at(0)[0].as<int>();
}

TEST_CASE("LocalPostgres serves loopback connections and keeps its port across Restart",
          "[pg][local_postgres]") {
  LocalPostgresOptions options;
  options.data_dir = testing::ScratchDir("local_postgres_restart") + "/data";
  options.fsync = false;
  auto pg = LocalPostgres::Start(options);
  REQUIRE(pg.ok());
  LocalPostgres& server = **pg;
  CHECK(server.running());
  CHECK(server.port() > 0);
  CHECK(server.conninfo().find("host=127.0.0.1") != std::string::npos);
  CHECK(Ping(server.conninfo()) == 42);
  CHECK(std::filesystem::exists(options.data_dir + "/PG_VERSION"));

  const int port = server.port();
  REQUIRE(server.Stop().ok());
  CHECK_FALSE(server.running());
  CHECK_THROWS_AS(Ping(server.conninfo()), pqxx::broken_connection);
  REQUIRE(server.StartAgain().ok());
  CHECK(server.port() == port);
  CHECK(Ping(server.conninfo()) == 42);
  REQUIRE(server.Restart().ok());
  CHECK(server.port() == port);

  auto db = server.CreateDatabase("other");
  REQUIRE(db.ok());
  CHECK(Ping(*db) == 42);
}

TEST_CASE("LocalPostgres reuses an existing cluster in its data directory",
          "[pg][local_postgres]") {
  LocalPostgresOptions options;
  options.data_dir = testing::ScratchDir("local_postgres_reuse") + "/data";
  options.fsync = false;
  {
    auto pg = LocalPostgres::Start(options);
    REQUIRE(pg.ok());
    REQUIRE((*pg)->CreateDatabase("kept").ok());
  }  // destructor stops the server
  auto pg = LocalPostgres::Start(options);
  REQUIRE(pg.ok());
  CHECK(Ping((*pg)->ConnInfo("kept")) == 42);
}

TEST_CASE(
    "A read_only LocalPostgres answers reads, refuses writes, and an up-to-date schema migrates "
    "on it",
    "[pg][local_postgres]") {
  const std::string dir = testing::ScratchDir("local_postgres_read_only") + "/data";
  LocalPostgresOptions options;
  options.data_dir = dir;
  options.fsync = false;
  std::string conninfo;
  {
    auto pg = LocalPostgres::Start(options);
    REQUIRE(pg.ok());
    auto db = (*pg)->CreateDatabase("ro");
    REQUIRE(db.ok());
    REQUIRE(Migrate(*db).ok());
  }
  options.read_only = true;
  auto pg = LocalPostgres::Start(options);
  REQUIRE(pg.ok());
  conninfo = (*pg)->ConnInfo("ro");
  auto version = Migrate(conninfo);  // only reads: every migration is recorded
  INFO(version.status().ToString());
  REQUIRE(version.ok());
  CHECK(*version == internal::Migrations().back().version);
  pqxx::connection c(conninfo);
  {
    pqxx::work tx(c);
    CHECK(tx.exec("SELECT count(*) FROM schema_version").at(0)[0].as<int>() == *version);
  }
  pqxx::work tx(c);
  CHECK_THROWS_WITH(tx.exec("CREATE TABLE t (x int)"),
                    Catch::Contains("read-only transaction"));
}

TEST_CASE("A LocalPostgres with stop_with_owner stops when its owner is killed",
          "[pg][local_postgres]") {
  const std::string dir = testing::ScratchDir("local_postgres_guardian") + "/data";
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t owner = fork();
  if (owner == 0) {  // the owner: starts the server, says its pid, waits to be killed
    LocalPostgresOptions options;
    options.data_dir = dir;
    options.fsync = false;
    options.stop_with_owner = true;
    auto pg = LocalPostgres::Start(options);
    const pid_t pid = pg.ok() ? (*pg)->pid() : 0;
    if (write(fds[1], &pid, sizeof(pid)) != sizeof(pid)) _exit(1);
    pause();
    _exit(0);
  }
  close(fds[1]);
  pid_t postmaster = 0;
  REQUIRE(read(fds[0], &postmaster, sizeof(postmaster)) == sizeof(postmaster));
  close(fds[0]);
  REQUIRE(postmaster > 0);
  CHECK(kill(postmaster, 0) == 0);
  kill(owner, SIGKILL);
  waitpid(owner, nullptr, 0);
  // The guardian runs pg_ctl stop: the postmaster exits and removes its pid file.
  CHECK(testing::WaitUntil([&] { return !std::filesystem::exists(dir + "/postmaster.pid"); },
                           std::chrono::seconds(30), std::chrono::milliseconds(100)));
}

TEST_CASE("LocalPostgres errors name what failed", "[pg][local_postgres]") {
  LocalPostgresOptions options;
  SECTION("a data directory holding something else") {
    options.data_dir = testing::ScratchDir("local_postgres_not_empty");
    std::ofstream(options.data_dir + "/stray.txt") << "not a cluster";
    auto pg = LocalPostgres::Start(options);
    REQUIRE(pg.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(pg.status().message().find(options.data_dir) != std::string::npos);
  }
  SECTION("missing server binaries") {
    options.data_dir = testing::ScratchDir("local_postgres_no_bin") + "/data";
    options.bin_dir = "/nonexistent/bin";
    auto pg = LocalPostgres::Start(options);
    REQUIRE(pg.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(pg.status().message().find("/nonexistent/bin") != std::string::npos);
  }
  SECTION("an empty data_dir option") {
    CHECK(LocalPostgres::Start(options).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace bitsweep::store
