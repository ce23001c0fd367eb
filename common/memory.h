// Memory sizes as users write them, and how much memory this process may use. Torch-free.
//
// A worker evaluates a model resident when it fits and layer-streamed when it does not
// (model/memory_plan.h); the budget is `--max-memory` or what this reports as available.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace bitsweep {

// "512MiB", "4GiB", "1.5G", "800M", "65536" (bytes). Binary units (KiB, MiB, GiB, TiB) and
// decimal ones (KB/K, MB/M, GB/G, TB/T); case-insensitive. INVALID_ARGUMENT naming the text.
StatusOr<int64_t> ParseByteSize(const std::string& text);

// "512 MiB", "3.2 GiB": for messages.
std::string FormatBytes(int64_t bytes);

// The remaining room under a cgroup memory limit given the limit file's and the usage file's
// contents (v2 memory.max / memory.current, v1 memory.limit_in_bytes / memory.usage_in_bytes);
// nullopt for "max" or an unusable text.
std::optional<int64_t> CgroupRoom(const std::string& limit_text, const std::string& usage_text);

// Bytes this process can still allocate: /proc/meminfo's MemAvailable, lowered to the room left
// under the tightest cgroup memory limit along the process's cgroup path. `root` prefixes /proc
// and /sys (tests point it at a fake tree). 0 when nothing can be read.
int64_t AvailableMemoryBytes(const std::string& root = "");

}  // namespace bitsweep
