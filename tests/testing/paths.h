// Where tests find the project's sources, build outputs, scratch space and ../shared/data.
#pragma once

#include <string>

namespace bitsweep::testing {

// The repository root (absolute).
std::string SourceDir();
// The CMake build directory (absolute).
std::string BinaryDir();
// A fresh, empty directory under this process's scratch root; `name` must be unique per test.
// Test processes run side by side (ctest -j), so each has its own root: two test cases of one
// binary using the same name never see each other's files.
std::string ScratchDir(const std::string& name);
// <build>/test-scratch/p<pid>: removed by the test main when all of its tests pass.
std::string ProcessScratchRoot();
// ../shared/data next to the checkout (or $BITSWEEP_DATA_DIR), or "" when it is absent.
std::string SharedDataDir();

}  // namespace bitsweep::testing

// For [data] tests: Catch2 v2 has no SKIP, so say why and return.
#define REQUIRE_SHARED_DATA(var)                                                          \
  const std::string var = ::bitsweep::testing::SharedDataDir();                           \
  if (var.empty()) {                                                                      \
    WARN("skipped: ../shared/data not found (set BITSWEEP_DATA_DIR to the evaluation data)"); \
    return;                                                                               \
  }
