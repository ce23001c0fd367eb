// How many CPUs this process may use: what intra-op thread pools should be sized to. Torch-free.
//
// std::thread::hardware_concurrency() counts the machine's CPUs, but a worker pod limited to 4
// CPUs on a 64-core node (a cgroup CPU quota) or pinned with taskset (an affinity mask) that
// starts 64 OpenMP threads is throttled, and OpenMP threads that outnumber the cores spin
// against each other: two 2-thread processes on 2 cores ran the demo quantization test 20x
// slower than one (measured: 16 s alone, 6.5 min side by side).
#pragma once

#include <optional>
#include <string>

namespace bitsweep {

// The CPU limit of a cgroup v2 `cpu.max` file's contents ("max 100000" = none, "250000 100000"
// = 2.5 CPUs); nullopt when there is no limit or the text is not in that form.
std::optional<double> ParseCgroupV2CpuMax(const std::string& text);

// CPUs available to this process: the affinity mask's size, lowered to the cgroup CPU quota
// (v2 `cpu.max` along the process's cgroup path, or v1 `cpu.cfs_quota_us`) rounded up; at least
// 1. `root` prefixes /proc and /sys (tests point it at a fake tree).
int AvailableCpus(const std::string& root = "");

// Threads a compute process should use when not told: OMP_NUM_THREADS when it is a positive
// integer (the OpenMP convention), otherwise AvailableCpus().
int DefaultComputeThreads();

}  // namespace bitsweep
