// Mixed precision and sensitivity sweeps end to end (issue 18 item 3): examples/sweeps/
// sensitivity.yaml through `bitsweep local` (a private PostgreSQL, the coordinator, a worker)
// on the demo model: one job per decoder layer with only that layer at 2 bits, the mixed
// recipe's average bits in its provenance, and the per-layer ppl delta in the results table.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;

int Sh(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("examples/sweeps/sensitivity.yaml gives one 2-bit job per layer and the mixed recipe's "
          "average bits through bitsweep local",
          "[e2e][pg][grpc][slow]") {
  const std::string src = bitsweep::testing::SourceDir();
  const std::string root = bitsweep::testing::ScratchDir("e2e_mixed");
  fs::create_directories(root + "/examples/sweeps");
  fs::copy_file(src + "/examples/sweeps/sensitivity.yaml",
                root + "/examples/sweeps/sensitivity.yaml");
  fs::create_directories(root + "/models");
  fs::copy(src + "/models/demo", root + "/models/demo", fs::copy_options::recursive);
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  const std::string args = " local examples/sweeps/sensitivity.yaml --workers 1 "
                           "--threads-per-worker 1 --state-dir state --data-dir models/demo/heldout";
  const std::string cd = "cd " + root + " && ";
  const int rc = Sh(cd + bin + args + " --format json > out.json 2> err.txt");
  INFO(Slurp(root + "/err.txt"));
  REQUIRE(rc == 0);
  const nlohmann::json rows = nlohmann::json::parse(Slurp(root + "/out.json"));
  // FP, the mixed recipe and the 4 layers of the demo model, on one task.
  REQUIRE(rows.size() == 6);
  double fp = 0;
  std::map<std::string, double> by_overrides;
  for (const auto& row : rows) {
    const auto& q = row["spec"]["quant"];
    if (q["method"] == "fp") {
      fp = row["value"].get<double>();
      continue;
    }
    REQUIRE(q.contains("overrides"));
    std::string text;
    for (const auto& o : q["overrides"]) text += o.dump();
    by_overrides[text] = row["value"].get<double>();
    INFO(row.dump());
    REQUIRE(row["provenance"].contains("avg_wbits"));
    const double avg = row["provenance"]["avg_wbits"].get<double>();
    if (q["wbits"] == 3) {
      // Layer 0 at 4 bits and every down_proj at 4: between 3 and 4 bits on average.
      CHECK(avg > 3.0);
      CHECK(avg < 4.0);
    } else {
      // One of the four layers at 2 bits, the others at 16: (2 + 3 x 16) / 4.
      CHECK(avg == Approx(12.5));
    }
  }
  CHECK(by_overrides.size() == 5);
  REQUIRE(fp > 1.0);
  for (const auto& [text, ppl] : by_overrides) {
    INFO(text << ": " << ppl << " vs FP " << fp);
    CHECK(std::isfinite(ppl));
    CHECK(ppl != fp);  // each unit's 2 bits change the model
  }

  // The results table the HTML report embeds: each sensitivity row with its unit.
  REQUIRE(Sh(cd + bin + " local --results --state-dir state --format html > table.html 2>&1") ==
          0);
  const std::string table = Slurp(root + "/table.html");
  CHECK(table.find("sensitivity_unit") != std::string::npos);
  for (int l = 0; l < 4; ++l) {
    CHECK(table.find("\"layer " + std::to_string(l) + "\"") != std::string::npos);
  }
}
