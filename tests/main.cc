// The Catch2 main of every test binary. ctest runs each test case as its own process, several
// at once, so every process gets its own scratch root (tests/testing/paths.h); it is removed
// when all of the process's tests pass and kept, with its path printed, when one fails (for an
// hour: a later test process then removes it).
#define CATCH_CONFIG_RUNNER
#include <signal.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "tests/testing/paths.h"

namespace {

// Removes the scratch roots of test processes that ended over an hour ago without removing them
// (a failure, a timeout) and anything else left under test-scratch.
void RemoveStaleScratch() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path top = fs::path(bitsweep::testing::ProcessScratchRoot()).parent_path();
  for (const auto& entry : fs::directory_iterator(top, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 1 && name.size() < 12 && name[0] == 'p' &&
        name.find_first_not_of("0123456789", 1) == std::string::npos) {
      const pid_t pid = static_cast<pid_t>(std::stol(name.substr(1)));
      if (kill(pid, 0) == 0 || errno == EPERM) continue;  // its process still runs
      // A failed test's scratch stays an hour for whoever looks into the failure.
      const auto age = fs::file_time_type::clock::now() - fs::last_write_time(entry.path(), ec);
      if (ec || age < std::chrono::hours(1)) continue;
    }
    fs::remove_all(entry.path(), ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  RemoveStaleScratch();
  const int failed = Catch::Session().run(argc, argv);
  const std::filesystem::path root = bitsweep::testing::ProcessScratchRoot();
  std::error_code ec;
  if (std::filesystem::exists(root, ec)) {
    if (failed == 0) {
      std::filesystem::remove_all(root, ec);
    } else {
      std::fprintf(stderr, "test scratch kept in %s\n", root.c_str());
    }
  }
  return failed;
}
