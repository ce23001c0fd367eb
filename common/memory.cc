#include "common/memory.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/cgroup.h"

namespace bitsweep {
namespace {

std::optional<int64_t> MemAvailable(const std::string& root) {
  auto info = ReadTextFile(root + "/proc/meminfo");
  if (!info) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*info, '\n', absl::SkipEmpty())) {
    if (!absl::ConsumePrefix(&line, "MemAvailable:")) continue;
    line = absl::StripAsciiWhitespace(line);
    absl::ConsumeSuffix(&line, "kB");
    int64_t kib = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kib)) return kib * 1024;
  }
  return std::nullopt;
}

// The tightest room along the process's cgroup path, v2 and v1 memory controllers.
std::optional<int64_t> CgroupMemoryRoom(const std::string& root) {
  std::optional<int64_t> best;
  auto take = [&](const std::string& limit, const std::string& usage) {
    auto l = ReadTextFile(limit), u = ReadTextFile(usage);
    if (!l || !u) return;
    auto room = CgroupRoom(*l, *u);
    if (room && (!best || *room < *best)) best = room;
  };
  for (const CgroupMembership& m : ProcessCgroups(root)) {
    const bool memory = std::find(m.controllers.begin(), m.controllers.end(), "memory") !=
                        m.controllers.end();
    if (!m.v2 && !memory) continue;
    for (const auto& d : m.dirs) {
      if (m.v2) {
        const std::string dir = root + "/sys/fs/cgroup" + d;
        take(dir + "/memory.max", dir + "/memory.current");
      } else {
        const std::string dir = root + "/sys/fs/cgroup/memory" + d;
        take(dir + "/memory.limit_in_bytes", dir + "/memory.usage_in_bytes");
      }
    }
  }
  return best;
}

}  // namespace

StatusOr<int64_t> ParseByteSize(const std::string& text) {
  std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  size_t digits = 0;
  while (digits < s.size() && (absl::ascii_isdigit(s[digits]) || s[digits] == '.')) ++digits;
  const std::string number = s.substr(0, digits);
  const std::string unit(absl::StripAsciiWhitespace(s.substr(digits)));
  double value = 0;
  const double kib = 1024.0;
  double scale = 0;
  if (unit.empty() || unit == "b") scale = 1;
  if (unit == "kib") scale = kib;
  if (unit == "mib") scale = kib * kib;
  if (unit == "gib") scale = kib * kib * kib;
  if (unit == "tib") scale = kib * kib * kib * kib;
  if (unit == "k" || unit == "kb") scale = 1e3;
  if (unit == "m" || unit == "mb") scale = 1e6;
  if (unit == "g" || unit == "gb") scale = 1e9;
  if (unit == "t" || unit == "tb") scale = 1e12;
  if (number.empty() || !absl::SimpleAtod(number, &value) || scale == 0 || !(value > 0) ||
      value * scale > 9e18) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not a memory size (a positive number with an optional unit: ",
        "B, KiB, MiB, GiB, TiB, or KB/K, MB/M, GB/G, TB/T; e.g. 512MiB, 4GiB)"));
  }
  return static_cast<int64_t>(std::llround(value * scale));
}

std::string FormatBytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return absl::StrFormat("%.1f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return absl::StrFormat("%.0f MiB", b / (1024.0 * 1024));
  if (b >= 1024.0) return absl::StrFormat("%.0f KiB", b / 1024.0);
  return absl::StrCat(bytes, " B");
}

std::optional<int64_t> CgroupRoom(const std::string& limit_text, const std::string& usage_text) {
  int64_t limit = 0, usage = 0;
  const auto limit_s = absl::StripAsciiWhitespace(limit_text);
  if (limit_s == "max" || !absl::SimpleAtoi(limit_s, &limit) || limit <= 0) return std::nullopt;
  // cgroup v1 reports "no limit" as a huge page-rounded number.
  if (limit >= (int64_t{1} << 62)) return std::nullopt;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(usage_text), &usage)) usage = 0;
  return std::max<int64_t>(0, limit - usage);
}

int64_t AvailableMemoryBytes(const std::string& root) {
  std::optional<int64_t> available = MemAvailable(root);
  if (auto room = CgroupMemoryRoom(root)) {
    available = available ? std::min(*available, *room) : *room;
  }
  return available.value_or(0);
}

}  // namespace bitsweep
