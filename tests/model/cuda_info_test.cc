#include "model/cuda_info.h"

#include <catch2/catch.hpp>
#include <string>

#include "model/device.h"

namespace {

using Catch::Matchers::Contains;
using bitsweep::model::CudaCompiledIn;
using bitsweep::model::ListCudaDevices;
using bitsweep::model::QueryCudaDevice;

TEST_CASE("Without CUDA in the build every device query says so", "[device]") {
  if (CudaCompiledIn()) {
    WARN("this build has CUDA: the CPU-build behaviour is not what runs here");
    return;
  }
  auto list = ListCudaDevices();
  REQUIRE_FALSE(list.ok());
  CHECK(list.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(list.status().message()), Contains("no CUDA in this build"));
  auto one = QueryCudaDevice(0);
  REQUIRE_FALSE(one.ok());
  CHECK_THAT(std::string(one.status().message()), Contains("no CUDA in this build"));
}

TEST_CASE("With CUDA the listed devices are the visible ones, each with its memory",
          "[device]") {
  if (!CudaCompiledIn()) {
    WARN("this build has no CUDA (BITSWEEP_WITH_CUDA off): nothing to list");
    return;
  }
  auto list = ListCudaDevices();
  REQUIRE(list.ok());
  CHECK(static_cast<int>(list->size()) == bitsweep::model::VisibleCudaDevices());
  for (size_t i = 0; i < list->size(); ++i) {
    const auto& d = (*list)[i];
    CHECK(d.index == static_cast<int>(i));
    CHECK(d.total_bytes > 0);
    CHECK(d.free_bytes > 0);
    CHECK(d.free_bytes <= d.total_bytes);
    CHECK(d.compute_major > 0);
  }
  auto beyond = QueryCudaDevice(static_cast<int>(list->size()));
  REQUIRE_FALSE(beyond.ok());
  CHECK(beyond.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(beyond.status().message()), Contains("visible"));
}

}  // namespace
