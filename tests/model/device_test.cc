#include "model/device.h"

#include "model/qwen3_layer.h"

#include <catch2/catch.hpp>

namespace {

using Catch::Matchers::Contains;

TEST_CASE("Devices resolve from their spellings and bad ones name what is available",
          "[device]") {
  auto cpu = bitsweep::model::ResolveDevice("cpu");
  REQUIRE(cpu.ok());
  CHECK(cpu->is_cpu());
  auto bad = bitsweep::model::ResolveDevice("tpu:0");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("available: cpu"));
  CHECK_FALSE(bitsweep::model::ResolveDevice("cuda:-1").ok());
  CHECK_FALSE(bitsweep::model::ResolveDevice("cuda:x").ok());
  auto automatic = bitsweep::model::ResolveDevice("auto");
  REQUIRE(automatic.ok());
  const int gpus = bitsweep::model::VisibleCudaDevices();
  if (gpus == 0) {
    CHECK(automatic->is_cpu());
    auto cuda = bitsweep::model::ResolveDevice("cuda");
    REQUIRE_FALSE(cuda.ok());
    CHECK_THAT(std::string(cuda.status().message()), Contains("has no CUDA"));
  } else {
    CHECK(automatic->is_cuda());
    auto beyond = bitsweep::model::ResolveDevice("cuda:" + std::to_string(gpus));
    REQUIRE_FALSE(beyond.ok());
    CHECK_THAT(std::string(beyond.status().message()), Contains("visible"));
  }
}

TEST_CASE("The auto compute dtype is bf16 on CUDA and fp32 on the CPU, explicit ones are kept",
          "[device]") {
  using bitsweep::model::ComputeDType;
  using bitsweep::model::ResolveComputeDType;
  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA, 0);  // a CUDA name needs no GPU
  CHECK(*ResolveComputeDType("auto", cpu) == ComputeDType::kFloat32);
  CHECK(*ResolveComputeDType("auto", cuda) == ComputeDType::kBFloat16);
  CHECK(*ResolveComputeDType("fp32", cuda) == ComputeDType::kFloat32);
  CHECK(*ResolveComputeDType("bf16", cpu) == ComputeDType::kBFloat16);
  auto bad = ResolveComputeDType("fp8", cpu);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("expected auto, fp32 or bf16"));
}

}  // namespace
