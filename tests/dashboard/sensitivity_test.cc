// The sensitivity bar chart (dashboard/src/charts.js, shared by the dashboard, the HTML report
// and `bitsweep report`) in headless Chromium: a layer sensitivity sweep of the demo model
// expanded, its results pivoted (common/results_table.h) and rendered as the report `bitsweep
// results --format html` writes; sensitivity.mjs checks the bars against the pivot's deltas.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/job_spec.h"
#include "common/results_table.h"
#include "common/sweep.h"
#include "dashboard/assets.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

}  // namespace

TEST_CASE("the report draws a sensitivity sweep's per-layer ppl deltas as bars", "[browser]") {
  const std::string node_modules = BITSWEEP_PLAYWRIGHT_NODE_MODULES;
  if (!fs::exists("/usr/bin/chromium")) {
    WARN("skipped: /usr/bin/chromium is not installed (Debian package chromium)");
    return;
  }
  const std::string dir = bitsweep::testing::ScratchDir("dashboard_sensitivity");
  auto spec = bitsweep::ParseSweepYaml(
      "name: s\nmodels: [models/demo]\ntasks: [wikitext2]\n"
      "methods: [{method: rtn, wbits: 3, group: 64, overrides: [{layers: \"0\", wbits: 4}]}]\n"
      "sensitivity: {method: rtn, wbits: 2, group: 64, unit: layer}\n",
      "s.yaml");
  REQUIRE(spec.ok());
  bitsweep::ExpandOptions o;
  o.model_root = bitsweep::testing::SourceDir();
  auto e = bitsweep::ExpandSweep(*spec, o);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  REQUIRE(e->jobs.size() == 6);  // FP, the mixed recipe, 4 layers
  // Perplexities as a sensitivity sweep shows them: the first and last layers matter most.
  const double ppl[] = {6.3, 6.9, 9.5, 6.5, 6.4, 7.8};
  std::vector<bitsweep::ResultInput> in;
  for (size_t i = 0; i < e->jobs.size(); ++i) {
    bitsweep::ResultInput r;
    r.job_id = static_cast<int64_t>(i + 1);
    r.spec_json = bitsweep::JobSpecToJson(e->jobs[i]);
    r.metric = "ppl";
    r.value = ppl[i];
    r.provenance_json = "{\"avg_wbits\": 12.5}";
    in.push_back(r);
  }
  const std::string table = bitsweep::ResultsTableToJson(bitsweep::PivotResults(in));
  json expected = {{"column", "wikitext2 ppl"}, {"units", json::array()}, {"deltas", json::array()}};
  const json parsed = json::parse(table);
  for (const json& row : parsed["rows"]) {
    if (row.value("sensitivity_unit", std::string()).empty()) continue;
    expected["units"].push_back(row["sensitivity_unit"]);
    expected["deltas"].push_back(row["cells"]["wikitext2 ppl"]["delta"]);
  }
  REQUIRE(expected["units"] == json({"layer 0", "layer 1", "layer 2", "layer 3"}));
  bitsweep::testing::WriteFile(dir + "/expected.json", expected.dump());
  bitsweep::testing::WriteFile(dir + "/report.html",
                               bitsweep::dashboard::RenderReport("sensitivity", table));
  const std::string shots = bitsweep::testing::BinaryDir() + "/dashboard-screenshots";
  const std::string cmd = "node " + bitsweep::testing::SourceDir() +
                          "/tests/dashboard/sensitivity.mjs --node-modules " + node_modules +
                          " --report " + dir + "/report.html --expected " + dir +
                          "/expected.json --out " + shots + " > " + dir + "/out.txt 2>&1";
  const int status = std::system(cmd.c_str());
  INFO(bitsweep::testing::Slurp(dir + "/out.txt"));
  CHECK((WIFEXITED(status) ? WEXITSTATUS(status) : -1) == 0);
}
