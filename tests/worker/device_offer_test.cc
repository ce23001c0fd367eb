// The worker's offer from its flags and the GPUs it discovers: the rules that make the pod's GPU
// limit, --devices and the GPUs actually visible agree, tested with discovered lists (a GPU is
// not needed to decide).
#include "worker/device_offer.h"

#include <catch2/catch.hpp>

namespace bitsweep::worker {
namespace {

using Catch::Matchers::Contains;

model::CudaDeviceInfo Gpu(int index, double gib) {
  model::CudaDeviceInfo g;
  g.index = index;
  g.name = "NVIDIA H100 80GB HBM3";
  g.total_bytes = static_cast<int64_t>(gib * 1024 * 1024 * 1024);
  g.free_bytes = g.total_bytes - (int64_t{1} << 30);
  return g;
}

StatusOr<std::vector<model::CudaDeviceInfo>> Gpus(std::vector<double> gib) {
  std::vector<model::CudaDeviceInfo> out;
  for (size_t i = 0; i < gib.size(); ++i) out.push_back(Gpu(static_cast<int>(i), gib[i]));
  return out;
}

std::string Error(const DeviceFlags& flags, const StatusOr<std::vector<model::CudaDeviceInfo>>& d) {
  auto offer = PlanDeviceOffer(flags, d);
  REQUIRE_FALSE(offer.ok());
  CHECK(offer.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(offer.status().message());
}

TEST_CASE("a GPU worker offers exactly the GPUs it sees, the smallest one's memory per device, "
          "and one tensor-parallel rank per GPU",
          "[worker]") {
  DeviceFlags flags;
  auto offer = PlanDeviceOffer(flags, Gpus({79.1, 39.5}));
  REQUIRE(offer.ok());
  CHECK(offer->cuda);
  CHECK(offer->devices == 2);
  CHECK(offer->memory_gb == Approx(39.5).margin(0.1));  // GiB rounded down to 0.1
  CHECK(offer->memory_cap_gb == 0);  // the job plans against what is free when it runs
  CHECK(offer->max_tp == 2);
  CHECK(offer->gpu_ids == std::vector<std::string>{"0", "1"});
  CHECK_THAT(offer->description, Contains("2 GPU(s)") && Contains("NVIDIA H100"));

  // The flags may say the same thing, or ask for less memory and fewer ranks.
  flags.devices = 2;
  flags.expect_gpus = 2;
  flags.memory_gb = 30;
  flags.max_tp = 1;
  offer = PlanDeviceOffer(flags, Gpus({79.1, 39.5}));
  REQUIRE(offer.ok());
  CHECK(offer->memory_gb == 30);
  CHECK(offer->memory_cap_gb == 30);
  CHECK(offer->max_tp == 1);
}

TEST_CASE("a GPU worker refuses to start when --devices, the pod's GPU count or its memory "
          "disagree with the GPUs it sees",
          "[worker]") {
  DeviceFlags flags;
  flags.devices = 2;
  CHECK_THAT(Error(flags, Gpus({79.1})), Contains("--devices 2 but 1 GPU(s) visible"));
  flags = {};
  flags.expect_gpus = 4;
  flags.cuda_visible_devices = "GPU-aa,GPU-bb";
  CHECK_THAT(Error(flags, Gpus({79.1, 79.1})),
             Contains("BITSWEEP_EXPECT_GPUS=4") && Contains("2 GPU(s) visible") &&
                 Contains("\"GPU-aa,GPU-bb\""));
  flags = {};
  flags.memory_gb = 80.5;
  CHECK_THAT(Error(flags, Gpus({80, 96})),
             Contains("--memory-gb 80.5 exceeds the memory of cuda:0") && Contains("80.0 GiB"));
  flags = {};
  flags.max_tp = 2;
  CHECK_THAT(Error(flags, Gpus({79.1})), Contains("--max-tp 2 exceeds the 1 GPU(s)"));
  // The pod was given GPUs, but this worker sees none, or was told to use the CPU.
  flags = {};
  flags.expect_gpus = 1;
  CHECK_THAT(Error(flags, absl::UnavailableError("no CUDA in this build")),
             Contains("BITSWEEP_EXPECT_GPUS=1") && Contains("no CUDA in this build"));
  flags.device = "cpu";
  CHECK_THAT(Error(flags, Gpus({79.1})), Contains("--device cpu"));
  flags = {};
  flags.device = "cuda";
  CHECK_THAT(Error(flags, Gpus({})), Contains("--device cuda: no CUDA device is visible"));
  flags.device = "cuda:1";
  CHECK_THAT(Error(flags, Gpus({79.1})), Contains("a worker takes auto, cpu or cuda"));
}

TEST_CASE("a CPU worker offers what its flags say, and auto falls back to the CPU without a GPU",
          "[worker]") {
  DeviceFlags flags;
  auto offer = PlanDeviceOffer(flags, absl::UnavailableError("no CUDA in this build"));
  REQUIRE(offer.ok());
  CHECK_FALSE(offer->cuda);
  CHECK(offer->devices == 1);
  CHECK(offer->memory_gb == 0);
  CHECK(offer->max_tp == 1);
  CHECK_THAT(offer->description, Contains("no CUDA in this build"));
  flags.device = "cpu";
  flags.devices = 2;
  flags.max_tp = 2;
  flags.memory_gb = 12;
  offer = PlanDeviceOffer(flags, Gpus({79.1}));  // GPUs present, but not used
  REQUIRE(offer.ok());
  CHECK_FALSE(offer->cuda);
  CHECK(offer->devices == 2);
  CHECK(offer->max_tp == 2);
  CHECK(offer->memory_cap_gb == 12);
  const JobDevices job = DevicesForJob(*offer, 2);
  CHECK(job.device == "cpu");
  CHECK(job.cuda_visible_devices.empty());
}

TEST_CASE("a job gets as many of the worker's GPUs as it leased, named as the worker's "
          "CUDA_VISIBLE_DEVICES names them",
          "[worker]") {
  DeviceFlags flags;
  flags.cuda_visible_devices = "4,5,6,7";
  auto offer = PlanDeviceOffer(flags, Gpus({79.1, 79.1, 79.1, 79.1}));
  REQUIRE(offer.ok());
  CHECK(DevicesForJob(*offer, 1).cuda_visible_devices == "4");
  CHECK(DevicesForJob(*offer, 2).cuda_visible_devices == "4,5");
  CHECK(DevicesForJob(*offer, 4).device == "cuda");
  CHECK(DevicesForJob(*offer, 4).cuda_visible_devices == "4,5,6,7");
  // Unset: CUDA's own numbering.
  flags.cuda_visible_devices.reset();
  offer = PlanDeviceOffer(flags, Gpus({79.1, 79.1}));
  REQUIRE(offer.ok());
  CHECK(DevicesForJob(*offer, 2).cuda_visible_devices == "0,1");
}

}  // namespace
}  // namespace bitsweep::worker
