#include "store/local_postgres.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "tests/testing/paths.h"

namespace bitsweep::store {
namespace {

int Ping(const std::string& conninfo) {
  pqxx::connection c(conninfo);
  pqxx::work tx(c);
  return tx.exec1("SELECT 41 + 1")[0].as<int>();
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
