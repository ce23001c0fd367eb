#include "worker/device_offer.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace bitsweep::worker {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// The names CUDA gives the visible GPUs: the entries of CUDA_VISIBLE_DEVICES, else 0..n-1.
std::vector<std::string> GpuIds(const std::optional<std::string>& visible, size_t n) {
  std::vector<std::string> ids;
  if (visible) {
    for (absl::string_view id : absl::StrSplit(*visible, ',', absl::SkipWhitespace())) {
      ids.emplace_back(absl::StripAsciiWhitespace(id));
    }
  }
  if (ids.size() < n) {
    ids.clear();
    for (size_t i = 0; i < n; ++i) ids.push_back(std::to_string(i));
  }
  ids.resize(n);
  return ids;
}

StatusOr<DeviceOffer> CpuOffer(const DeviceFlags& flags, const std::string& why) {
  if (flags.expect_gpus.value_or(0) > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BITSWEEP_EXPECT_GPUS=", *flags.expect_gpus,
        " (the GPUs this pod was given) but this worker runs on the CPU: ", why));
  }
  DeviceOffer offer;
  offer.devices = flags.devices.value_or(1);
  offer.memory_gb = flags.memory_gb.value_or(0);
  offer.max_tp = flags.max_tp.value_or(1);
  offer.description = absl::StrCat("cpu (", why, ")");
  return offer;
}

StatusOr<DeviceOffer> PlanOffer(
    const DeviceFlags& flags, const StatusOr<std::vector<model::CudaDeviceInfo>>& discovered) {
  if (flags.device != "auto" && flags.device != "cpu" && flags.device != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--device \"", flags.device,
        "\": a worker takes auto, cpu or cuda (it gives each job its GPUs through "
        "CUDA_VISIBLE_DEVICES; restrict the worker's own GPUs with CUDA_VISIBLE_DEVICES)"));
  }
  if (flags.device == "cpu") return CpuOffer(flags, "--device cpu");
  const std::string none =
      !discovered.ok() ? std::string(discovered.status().message()) : "no CUDA device is visible";
  if (!discovered.ok() || discovered->empty()) {
    if (flags.device == "cuda") {
      return absl::InvalidArgumentError(absl::StrCat("--device cuda: ", none));
    }
    return CpuOffer(flags, none);
  }
  const std::vector<model::CudaDeviceInfo>& gpus = *discovered;
  const int n = static_cast<int>(gpus.size());
  DeviceOffer offer;
  offer.cuda = true;
  offer.gpus = gpus;
  offer.gpu_ids = GpuIds(flags.cuda_visible_devices, gpus.size());
  const std::string seen =
      absl::StrCat(n, " GPU(s) visible (CUDA_VISIBLE_DEVICES ",
                   flags.cuda_visible_devices ? "\"" + *flags.cuda_visible_devices + "\"" : "unset",
                   ")");
  if (flags.devices && *flags.devices != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--devices ", *flags.devices, " but ", seen,
        ": a GPU worker offers exactly the GPUs it sees (fix --devices, or the pod's GPU limit)"));
  }
  if (flags.expect_gpus && *flags.expect_gpus != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BITSWEEP_EXPECT_GPUS=", *flags.expect_gpus, " (the GPUs this pod was given) but ", seen));
  }
  offer.devices = n;
  const auto smallest = std::min_element(
      gpus.begin(), gpus.end(),
      [](const auto& a, const auto& b) { return a.total_bytes < b.total_bytes; });
  // GiB with one decimal, rounded down: what the scheduler compares resources.memory_gb with.
  const double per_gpu_gb = std::floor(static_cast<double>(smallest->total_bytes) / kGiB * 10) / 10;
  if (flags.memory_gb && *flags.memory_gb > per_gpu_gb) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--memory-gb %g exceeds the memory of cuda:%d (%s, %.1f GiB): on GPUs it is memory "
        "per device",
        *flags.memory_gb, smallest->index, smallest->name, per_gpu_gb));
  }
  offer.memory_gb = flags.memory_gb.value_or(per_gpu_gb);
  if (flags.max_tp && *flags.max_tp > n) {
    return absl::InvalidArgumentError(absl::StrCat("--max-tp ", *flags.max_tp, " exceeds the ", n,
                                                   " GPU(s) of this worker (one GPU per rank)"));
  }
  offer.max_tp = flags.max_tp.value_or(n);
  std::vector<std::string> names;
  for (size_t i = 0; i < gpus.size(); ++i) {
    names.push_back(absl::StrFormat("cuda:%d=%s %s %.1f GiB", gpus[i].index, offer.gpu_ids[i],
                                    gpus[i].name, gpus[i].total_bytes / kGiB));
  }
  offer.description = absl::StrCat(n, " GPU(s): ", absl::StrJoin(names, ", "));
  return offer;
}

}  // namespace

StatusOr<DeviceOffer> PlanDeviceOffer(
    const DeviceFlags& flags, const StatusOr<std::vector<model::CudaDeviceInfo>>& discovered) {
  StatusOr<DeviceOffer> offer = PlanOffer(flags, discovered);
  if (offer.ok()) offer->memory_cap_gb = flags.memory_gb.value_or(0);
  return offer;
}

JobDevices DevicesForJob(const DeviceOffer& offer, int devices) {
  if (!offer.cuda) return {"cpu", ""};
  const size_t n = std::min(offer.gpu_ids.size(), static_cast<size_t>(std::max(1, devices)));
  return {"cuda", absl::StrJoin(offer.gpu_ids.begin(), offer.gpu_ids.begin() + n, ",")};
}

}  // namespace bitsweep::worker
