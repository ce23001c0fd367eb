// The cgroups of this process, as /proc/self/cgroup lists them, for reading limits along the
// path (a parent's limit binds its children too). Torch-free; `root` prefixes /proc and /sys
// (tests point it at a fake tree).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bitsweep {

// A small text file's contents; nullopt when it cannot be read.
std::optional<std::string> ReadTextFile(const std::string& path);

struct CgroupMembership {
  bool v2 = false;                       // the unified hierarchy ("0::/path")
  std::vector<std::string> controllers;  // v1: "cpu", "cpuacct", "memory", ...
  // The cgroup's path and its ancestors, leaf first, ending with "" (the mount root alone also
  // answers when the path is not visible there, as in a container's own cgroup namespace).
  std::vector<std::string> dirs;
};

std::vector<CgroupMembership> ProcessCgroups(const std::string& root = "");

}  // namespace bitsweep
