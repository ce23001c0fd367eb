#include "common/cpus.h"

#include <sched.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/cgroup.h"

namespace bitsweep {
namespace {

std::optional<double> V1Quota(const std::string& dir) {
  auto quota = ReadTextFile(dir + "/cpu.cfs_quota_us");
  auto period = ReadTextFile(dir + "/cpu.cfs_period_us");
  if (!quota || !period) return std::nullopt;
  int64_t q = 0, p = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*quota), &q) ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(*period), &p) || q <= 0 || p <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(q) / static_cast<double>(p);
}

// The smallest quota along the cgroup path (a parent's limit binds its children too); the
// mount root alone when the path is not visible there (a container's own cgroup namespace).
std::optional<double> CgroupQuota(const std::string& root) {
  std::optional<double> best;
  auto take = [&](std::optional<double> q) {
    if (q && (!best || *q < *best)) best = q;
  };
  for (const CgroupMembership& m : ProcessCgroups(root)) {
    if (m.v2) {
      for (const auto& d : m.dirs) {
        if (auto text = ReadTextFile(root + "/sys/fs/cgroup" + d + "/cpu.max")) {
          take(ParseCgroupV2CpuMax(*text));
        }
      }
      continue;
    }
    if (std::find(m.controllers.begin(), m.controllers.end(), "cpu") == m.controllers.end()) {
      continue;
    }
    for (const std::string mount : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
      for (const auto& d : m.dirs) take(V1Quota(root + mount + d));
    }
  }
  return best;
}

}  // namespace

std::optional<double> ParseCgroupV2CpuMax(const std::string& text) {
  std::vector<std::string> f =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (f.size() != 2 || f[0] == "max") return std::nullopt;
  int64_t quota = 0, period = 0;
  if (!absl::SimpleAtoi(f[0], &quota) || !absl::SimpleAtoi(f[1], &period) || quota <= 0 ||
      period <= 0) {
    return std::nullopt;
  }
  return static_cast<double>(quota) / static_cast<double>(period);
}

int AvailableCpus(const std::string& root) {
  int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (root.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  }
  if (auto quota = CgroupQuota(root)) {
    cpus = std::min(cpus, std::max(1, static_cast<int>(std::ceil(*quota - 1e-9))));
  }
  return cpus;
}

int DefaultComputeThreads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    int n = 0;
    if (absl::SimpleAtoi(env, &n) && n > 0) return n;
  }
  return AvailableCpus();
}

}  // namespace bitsweep
