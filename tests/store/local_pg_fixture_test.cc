// The [pg] test fixture (tests/testing/local_pg.h) leaves no PostgreSQL running when ctest kills
// a test binary at its timeout (SIGKILL: no destructor, no atexit). The test runs this binary
// again as such a test, naming a hidden case that starts the fixture's servers and waits to be
// killed, kills it, and watches the servers.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace bitsweep::store {
namespace {

constexpr char kReportEnv[] = "BITSWEEP_TEST_HOLD_PG_REPORT";

// Whether `pid` runs (a zombie does not: it waits for a parent that may never reap it).
bool Running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const auto paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

std::string SelfExe() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string();
}

// Hidden ([.]: ctest and plain runs skip it): what a [pg] test binary holds when ctest kills it.
TEST_CASE("(helper) holds the fixture's servers until killed", "[.][hold_pg]") {
  const char* report = std::getenv(kReportEnv);
  if (report == nullptr) return;
  const pid_t shared = testing::LocalPg().pid();
  auto own = testing::StartPostgres(std::string(report) + ".dir");
  {
    std::ofstream out(std::string(report) + ".tmp");
    out << shared << " " << own->pid() << "\n";
  }
  std::rename((std::string(report) + ".tmp").c_str(), report);
  for (;;) pause();
}

TEST_CASE("a test binary killed by ctest's timeout leaves no PostgreSQL of the test fixture "
          "running",
          "[pg][local_postgres][slow]") {
  const std::string dir = testing::ScratchDir("local_pg_fixture_killed");
  const std::string report = dir + "/pids";
  ::setenv(kReportEnv, report.c_str(), 1);
  const pid_t binary = testing::Spawn(
      {SelfExe(), "(helper) holds the fixture's servers until killed"}, dir + "/log");
  ::unsetenv(kReportEnv);
  REQUIRE(binary > 0);
  const bool reported = testing::WaitUntil([&] { return !testing::Slurp(report).empty(); },
                                           std::chrono::seconds(90));
  INFO(testing::Slurp(dir + "/log"));
  if (!reported) testing::Signal(binary, SIGKILL);
  REQUIRE(reported);
  pid_t shared = 0, own = 0;
  std::istringstream(testing::Slurp(report)) >> shared >> own;
  REQUIRE(shared > 0);
  REQUIRE(own > 0);
  CHECK(Running(shared));
  CHECK(Running(own));
  testing::Signal(binary, SIGKILL);  // as ctest does at a test's timeout
  CHECK(testing::WaitUntil([&] { return !Running(shared) && !Running(own); },
                           std::chrono::seconds(10), std::chrono::milliseconds(100)));
}

}  // namespace
}  // namespace bitsweep::store
