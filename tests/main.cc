// The Catch2 main of every test binary. ctest runs each test case as its own process, several
// at once, so every process gets its own scratch root (tests/testing/paths.h); it is removed
// when all of the process's tests pass and kept, with its path printed, when one fails.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "tests/testing/paths.h"

int main(int argc, char** argv) {
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
