// Pins what `bitsweep status` says of a sweep whose early_abort rule skipped jobs: the skipped
// count and the worker time saved, after the usual counts; nothing when it skipped none.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli/output.h"

TEST_CASE("status counts a sweep's skipped jobs as done and says what early abort saved",
          "[cli]") {
  bitsweep::v1::ListSweepsResponse sweeps;
  auto* s = sweeps.add_sweeps();
  s->set_id(3);
  s->set_name("demo");
  s->set_total(36);
  s->set_succeeded(34);
  s->set_skipped(2);
  s->set_saved_worker_seconds(125);
  auto* plain = sweeps.add_sweeps();
  plain->set_id(4);
  plain->set_name("other");
  plain->set_total(2);
  plain->set_succeeded(2);
  const std::vector<std::string> lines = bitsweep::cli::SweepLines(sweeps);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(" 36/36 ") != std::string::npos);
  CHECK(lines[0].size() > 23);
  CHECK(lines[0].substr(lines[0].size() - 41) == "  skipped 2 (saved ~2m05s of worker time)");
  CHECK(lines[1].find("skipped") == std::string::npos);
}
