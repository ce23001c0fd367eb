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

namespace bitsweep {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<double> V1Quota(const std::string& dir) {
  auto quota = ReadFile(dir + "/cpu.cfs_quota_us");
  auto period = ReadFile(dir + "/cpu.cfs_period_us");
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
  auto cgroups = ReadFile(root + "/proc/self/cgroup");
  if (!cgroups) return std::nullopt;
  std::optional<double> best;
  auto take = [&](std::optional<double> q) {
    if (q && (!best || *q < *best)) best = q;
  };
  for (absl::string_view line : absl::StrSplit(*cgroups, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    const std::string& path = parts[2];
    std::vector<std::string> dirs;  // the path and its ancestors, leaf first
    for (std::string p = path; !p.empty() && p != "/"; p = p.substr(0, p.rfind('/'))) {
      dirs.push_back(p);
    }
    dirs.push_back("");
    if (parts[0] == "0" && parts[1].empty()) {  // cgroup v2
      for (const auto& d : dirs) {
        if (auto text = ReadFile(root + "/sys/fs/cgroup" + d + "/cpu.max")) {
          take(ParseCgroupV2CpuMax(*text));
        }
      }
      continue;
    }
    std::vector<std::string> controllers = absl::StrSplit(parts[1], ',');
    if (std::find(controllers.begin(), controllers.end(), "cpu") == controllers.end()) continue;
    for (const std::string mount : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
      for (const auto& d : dirs) take(V1Quota(root + mount + d));
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
