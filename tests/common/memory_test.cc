#include "common/memory.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/testing/paths.h"

namespace fs = std::filesystem;

namespace {

void Write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST_CASE("Memory sizes parse in binary and decimal units, and bad ones are named", "[common]") {
  CHECK(*bitsweep::ParseByteSize("512MiB") == 512LL << 20);
  CHECK(*bitsweep::ParseByteSize("4GiB") == 4LL << 30);
  CHECK(*bitsweep::ParseByteSize(" 1.5gib ") == 3LL << 29);
  CHECK(*bitsweep::ParseByteSize("800M") == 800000000);
  CHECK(*bitsweep::ParseByteSize("16G") == 16000000000);
  CHECK(*bitsweep::ParseByteSize("65536") == 65536);
  for (const char* bad : {"", "MiB", "-1GiB", "0", "4 parsecs", "1e3", "99999999TiB"}) {
    auto r = bitsweep::ParseByteSize(bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(std::string(r.status().message()), Catch::Matchers::Contains("not a memory size"));
  }
  CHECK(bitsweep::FormatBytes(736LL << 20) == "736 MiB");
  CHECK(bitsweep::FormatBytes(3LL << 30) == "3.0 GiB");
}

TEST_CASE("Available memory is MemAvailable lowered to the room under the tightest cgroup limit",
          "[common]") {
  CHECK_FALSE(bitsweep::CgroupRoom("max\n", "100"));
  CHECK(*bitsweep::CgroupRoom("1000\n", "300\n") == 700);
  CHECK(*bitsweep::CgroupRoom("1000", "3000") == 0);
  CHECK_FALSE(bitsweep::CgroupRoom("9223372036854771712", "1"));  // v1's "no limit"

  const fs::path v2 = bitsweep::testing::ScratchDir("memory_v2");
  Write(v2 / "proc/meminfo", "MemTotal: 32000000 kB\nMemAvailable:   20000000 kB\n");
  Write(v2 / "proc/self/cgroup", "0::/kubepods/pod1/worker\n");
  CHECK(bitsweep::AvailableMemoryBytes(v2.string()) == 20000000LL * 1024);
  Write(v2 / "sys/fs/cgroup/kubepods/pod1/memory.max", "8589934592\n");  // 8 GiB
  Write(v2 / "sys/fs/cgroup/kubepods/pod1/memory.current", "1073741824\n");
  Write(v2 / "sys/fs/cgroup/kubepods/pod1/worker/memory.max", "max\n");
  Write(v2 / "sys/fs/cgroup/kubepods/pod1/worker/memory.current", "5\n");
  CHECK(bitsweep::AvailableMemoryBytes(v2.string()) == 7LL << 30);

  const fs::path v1 = bitsweep::testing::ScratchDir("memory_v1");
  Write(v1 / "proc/meminfo", "MemAvailable: 1000 kB\n");
  Write(v1 / "proc/self/cgroup", "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n");
  Write(v1 / "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", "4096000\n");
  Write(v1 / "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes", "96000\n");
  CHECK(bitsweep::AvailableMemoryBytes(v1.string()) == 1000 * 1024);  // meminfo is tighter
  Write(v1 / "proc/meminfo", "MemAvailable: 100000 kB\n");
  CHECK(bitsweep::AvailableMemoryBytes(v1.string()) == 4000000);
  CHECK(bitsweep::AvailableMemoryBytes((v1 / "nothing").string()) == 0);
}
