#include "common/cpus.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/testing/paths.h"

namespace fs = std::filesystem;
using bitsweep::AvailableCpus;

namespace {

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

int Machine() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

}  // namespace

TEST_CASE("cgroup v2 cpu.max parses to a CPU count, 'max' and garbage to no limit", "[common]") {
  CHECK(bitsweep::ParseCgroupV2CpuMax("250000 100000\n") == Approx(2.5));
  CHECK(bitsweep::ParseCgroupV2CpuMax("50000 100000") == Approx(0.5));
  CHECK_FALSE(bitsweep::ParseCgroupV2CpuMax("max 100000\n"));
  CHECK_FALSE(bitsweep::ParseCgroupV2CpuMax(""));
  CHECK_FALSE(bitsweep::ParseCgroupV2CpuMax("12"));
  CHECK_FALSE(bitsweep::ParseCgroupV2CpuMax("x 100000"));
  CHECK_FALSE(bitsweep::ParseCgroupV2CpuMax("0 100000"));
}

TEST_CASE("AvailableCpus follows the tightest cgroup v2 quota along the process's cgroup path",
          "[common]") {
  const fs::path root = bitsweep::testing::ScratchDir("cpus_v2");
  Write(root / "proc/self/cgroup", "0::/kubepods/pod1/worker\n");
  Write(root / "sys/fs/cgroup/cpu.max", "max 100000\n");
  Write(root / "sys/fs/cgroup/kubepods/pod1/worker/cpu.max", "max 100000\n");
  CHECK(AvailableCpus(root.string()) == Machine());  // no limit anywhere
  // A pod limit of 0.5 CPU above an unlimited container: one thread, never zero.
  Write(root / "sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000\n");
  CHECK(AvailableCpus(root.string()) == 1);
  // 1.5 CPUs rounds up to 2 (never more than the machine has).
  Write(root / "sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n");
  CHECK(AvailableCpus(root.string()) == std::min(2, Machine()));
}

TEST_CASE("AvailableCpus reads a cgroup v1 CFS quota, -1 meaning none", "[common]") {
  const fs::path root = bitsweep::testing::ScratchDir("cpus_v1");
  Write(root / "proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
  const fs::path dir = root / "sys/fs/cgroup/cpu,cpuacct/docker/abc";
  Write(dir / "cpu.cfs_quota_us", "-1\n");
  Write(dir / "cpu.cfs_period_us", "100000\n");
  CHECK(AvailableCpus(root.string()) == Machine());
  Write(dir / "cpu.cfs_quota_us", "100000\n");
  CHECK(AvailableCpus(root.string()) == 1);
}

TEST_CASE("AvailableCpus without cgroup files is the machine's CPU count", "[common]") {
  const fs::path root = bitsweep::testing::ScratchDir("cpus_none");
  fs::create_directories(root);
  CHECK(AvailableCpus(root.string()) == Machine());
  CHECK(AvailableCpus() >= 1);
  CHECK(AvailableCpus() <= Machine());
}

TEST_CASE("DefaultComputeThreads honours a positive OMP_NUM_THREADS and ignores a bad one",
          "[common]") {
  const char* saved = std::getenv("OMP_NUM_THREADS");
  const std::string keep = saved ? saved : "";
  setenv("OMP_NUM_THREADS", "3", 1);
  CHECK(bitsweep::DefaultComputeThreads() == 3);
  setenv("OMP_NUM_THREADS", "zero", 1);
  CHECK(bitsweep::DefaultComputeThreads() == AvailableCpus());
  unsetenv("OMP_NUM_THREADS");
  CHECK(bitsweep::DefaultComputeThreads() == AvailableCpus());
  if (saved) setenv("OMP_NUM_THREADS", keep.c_str(), 1);
}
