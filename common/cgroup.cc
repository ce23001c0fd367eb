#include "common/cgroup.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"

namespace bitsweep {

std::optional<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<CgroupMembership> ProcessCgroups(const std::string& root) {
  std::vector<CgroupMembership> out;
  auto cgroups = ReadTextFile(root + "/proc/self/cgroup");
  if (!cgroups) return out;
  for (absl::string_view line : absl::StrSplit(*cgroups, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    CgroupMembership m;
    m.v2 = parts[0] == "0" && parts[1].empty();
    if (!parts[1].empty()) m.controllers = absl::StrSplit(parts[1], ',');
    for (std::string p = parts[2]; !p.empty() && p != "/"; p = p.substr(0, p.rfind('/'))) {
      m.dirs.push_back(p);
    }
    m.dirs.push_back("");
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace bitsweep
