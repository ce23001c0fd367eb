// Where tests find the project's sources, build outputs, scratch space and ../shared/data.
#pragma once

#include <string>

namespace bitsweep::testing {

// The repository root (absolute).
std::string SourceDir();
// The CMake build directory (absolute).
std::string BinaryDir();
// A fresh, empty directory under the build tree for this test; `name` must be unique per test.
std::string ScratchDir(const std::string& name);
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
