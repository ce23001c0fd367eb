#include "model/torch_compat.h"

#include <catch2/catch.hpp>

namespace {

TEST_CASE("The version test compares major then minor", "[compat]") {
  using bitsweep::torch_compat::kTorchMajor;
  using bitsweep::torch_compat::kTorchMinor;
  CHECK(BITSWEEP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR));
  CHECK(BITSWEEP_TORCH_AT_LEAST(1, 0));
  CHECK_FALSE(BITSWEEP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR + 1));
  CHECK_FALSE(BITSWEEP_TORCH_AT_LEAST(TORCH_VERSION_MAJOR + 1, 0));
  CHECK(kTorchMajor >= 1);
  CHECK(kTorchMinor >= 0);
}

}  // namespace
