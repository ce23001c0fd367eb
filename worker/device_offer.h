// What a worker offers the coordinator (devices, memory per device, largest tensor-parallel
// size, its GPUs) and what it hands each job process, decided once at start from its flags and
// the GPUs it discovers (model/cuda_info.h). Pure: the discovery is an argument, so every rule
// is tested without a GPU.
//
// On GPUs: the worker offers exactly the GPUs it sees. `--devices`, and BITSWEEP_EXPECT_GPUS
// (the GPUs the pod was given: the Kubernetes GPU overlay sets it to its nvidia.com/gpu limit),
// must equal the discovered count, or the worker refuses to start; the memory offered is that
// of its smallest GPU (a job's resources.memory_gb is per device). A job that leased N devices
// runs with CUDA_VISIBLE_DEVICES naming N of them, one rank per GPU over NCCL. On the CPU the
// job process sees no GPU.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/cuda_info.h"

namespace bitsweep::worker {

struct DeviceFlags {
  std::string device = "auto";      // --device: auto (GPUs when the build has CUDA and sees
                                    // one), cpu, or cuda
  std::optional<int> devices;       // --devices, when given
  std::optional<double> memory_gb;  // --memory-gb, when given
  std::optional<int> max_tp;        // --max-tp, when given
  std::optional<int> expect_gpus;   // $BITSWEEP_EXPECT_GPUS, when set
  // The worker's own $CUDA_VISIBLE_DEVICES (nullopt when unset): a job's list names GPUs in the
  // worker's terms, so a worker restricted to "2,3" gives its jobs "2" or "3", never "0".
  std::optional<std::string> cuda_visible_devices;
};

struct DeviceOffer {
  bool cuda = false;
  int devices = 1;       // "cpu" counts as 1
  double memory_gb = 0;  // per device on GPUs; 0 = unspecified
  // --memory-gb when given: also each job process's memory budget (its --max-memory); 0 = the
  // job process plans against what is free when it runs.
  double memory_cap_gb = 0;
  int max_tp = 1;
  std::vector<model::CudaDeviceInfo> gpus;  // the GPUs offered, in index order
  std::vector<std::string> gpu_ids;         // each one's name in CUDA_VISIBLE_DEVICES terms
  std::string description;                  // one line for the worker's log
};

// INVALID_ARGUMENT naming the disagreement (`--devices 2` but 1 GPU visible; the pod's
// BITSWEEP_EXPECT_GPUS; --device cuda without a GPU, with the discovery's reason; --memory-gb
// above the smallest GPU's memory; --max-tp above the GPU count; an unknown --device).
StatusOr<DeviceOffer> PlanDeviceOffer(
    const DeviceFlags& flags, const StatusOr<std::vector<model::CudaDeviceInfo>>& discovered);

// What one job process gets when its job needs `devices` devices: the --device of run-job
// ("cuda" or "cpu") and its CUDA_VISIBLE_DEVICES ("" on the CPU: no GPU at all).
struct JobDevices {
  std::string device;
  std::string cuda_visible_devices;
};
JobDevices DevicesForJob(const DeviceOffer& offer, int devices);

}  // namespace bitsweep::worker
