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
#include "common/mixed_precision.h"
#include "common/results_table.h"
#include "common/sweep.h"
#include "dashboard/assets.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

}  // namespace

TEST_CASE(
    "the report draws a sensitivity sweep's per-layer ppl deltas as bars and its skipped cell "
    "with the early abort reason",
    "[browser]") {
  const std::string node_modules = BITSWEEP_PLAYWRIGHT_NODE_MODULES;
  if (!fs::exists("/usr/bin/chromium")) {
    WARN("skipped: /usr/bin/chromium is not installed (Debian package chromium)");
    return;
  }
  const std::string dir = bitsweep::testing::ScratchDir("dashboard_sensitivity");
  auto spec = bitsweep::ParseSweepYaml(
      "name: s\nmodels: [models/demo]\ntasks: [wikitext2, piqa]\n"
      "methods: [{method: rtn, wbits: 3, group: 64, overrides: [{layers: \"0\", wbits: 4}]}]\n"
      "sensitivity: {method: rtn, wbits: 2, group: 64, unit: layer}\n",
      "s.yaml");
  REQUIRE(spec.ok());
  bitsweep::ExpandOptions o;
  o.model_root = bitsweep::testing::SourceDir();
  auto e = bitsweep::ExpandSweep(*spec, o);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  REQUIRE(e->jobs.size() == 12);  // FP, the mixed recipe, 4 layers; each on both tasks
  // Perplexities as a sensitivity sweep shows them: the first and last layers matter most.
  const double ppl[] = {6.3, 6.9, 9.5, 6.5, 6.4, 7.8};
  std::vector<bitsweep::ResultInput> in;
  size_t next_ppl = 0;
  const std::string reason = "early abort: wikitext2 ppl 9.500 > 1.2 x FP 6.300";
  json skipped;
  for (size_t i = 0; i < e->jobs.size(); ++i) {
    const std::string spec_json = bitsweep::JobSpecToJson(e->jobs[i]);
    const int64_t id = static_cast<int64_t>(i + 1);
    // Layer 0's piqa job was skipped by an early_abort rule: a skipped cell with its reason.
    if (e->jobs[i].eval.task == "piqa" &&
        bitsweep::SensitivityUnit(e->jobs[i].quant) == "layer 0") {
      in.push_back(bitsweep::SkippedResultInput(id, spec_json, reason));
      skipped = {{"unit", "layer 0"}, {"column", "piqa acc"}, {"job_id", id}, {"reason", reason}};
      continue;
    }
    bitsweep::ResultInput r;
    r.job_id = id;
    r.spec_json = spec_json;
    const bool is_ppl = e->jobs[i].eval.task == "wikitext2";
    r.metric = is_ppl ? "ppl" : "acc";
    r.value = is_ppl ? ppl[next_ppl++] : 0.7;
    r.provenance_json = "{\"avg_wbits\": 12.5}";
    in.push_back(r);
  }
  REQUIRE(next_ppl == 6);
  REQUIRE(skipped.is_object());
  const std::string table = bitsweep::ResultsTableToJson(bitsweep::PivotResults(in));
  json expected = {{"column", "wikitext2 ppl"},
                   {"units", json::array()},
                   {"deltas", json::array()},
                   {"skipped", skipped}};
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
