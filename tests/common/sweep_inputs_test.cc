#include "common/sweep_inputs.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>

#include "tests/testing/paths.h"
#include "tests/testing/process.h"

using namespace bitsweep;
using bitsweep::testing::WriteFile;

namespace {

ExpandedSweep ExpandFile(const std::string& path) {
  auto spec = ParseSweepFile(path);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  auto e = ExpandSweep(*spec);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  return *e;
}

// A model folder holding every file a job reads.
void WriteCompleteModel(const std::string& dir) {
  WriteFile(dir + "/config.json", "{}");
  WriteFile(dir + "/model.safetensors", "x");
  WriteFile(dir + "/tokenizer.json", "{}");
}

}  // namespace

TEST_CASE("CheckSweepInputs lists every missing model file, task file and data folder once") {
  const std::string dir = testing::ScratchDir("sweep_inputs_missing");
  WriteCompleteModel(dir + "/good");
  WriteFile(dir + "/partial/config.json", "{}");  // no weights, no tokenizer.json
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", "text\n");
  WriteFile(dir + "/sweep.yaml",
            "name: t\n"
            "models: [good, partial, absent]\n"
            "methods: [{method: [gptq, awq], wbits: [4]}]\n"
            "tasks: [wikitext2, piqa, facts.jsonl]\n"
            "calibration: {source: calib.txt}\n");
  const ExpandedSweep sweep = ExpandFile(dir + "/sweep.yaml");
  InputCheckOptions options;
  options.data_dir = dir + "/data";
  const std::vector<std::string> problems = CheckSweepInputs(sweep, options);
  const std::vector<std::string> expected = {
      "task " + dir + "/facts.jsonl: no such file",
      "model " + dir + "/partial: no weights (*.safetensors)",
      "model " + dir + "/partial: no tokenizer.json",
      "model " + dir + "/absent: no such folder",
      "calibration source " + dir + "/calib.txt: no such file",
      "task piqa: no data in " + dir + "/data/piqa",
  };
  for (const std::string& e : expected) {
    INFO(e);
    CHECK(std::count(problems.begin(), problems.end(), e) == 1);
  }
  CHECK(problems.size() == expected.size());

  // Without a data folder every named task is a problem; check_named_data=false skips them.
  options.data_dir = "";
  const auto no_data = CheckSweepInputs(sweep, options);
  CHECK(std::count(no_data.begin(), no_data.end(),
                   "task wikitext2: no data folder (pass --data-dir or set $BITSWEEP_DATA_DIR)") == 1);
  options.check_named_data = false;
  CHECK(CheckSweepInputs(sweep, options).size() == expected.size() - 1);
}

TEST_CASE("CheckSweepInputs finds nothing wrong when every input is there") {
  const std::string dir = testing::ScratchDir("sweep_inputs_complete");
  WriteCompleteModel(dir + "/m");
  WriteFile(dir + "/data/c4/c4-train.00000-of-01024.json", "{}\n");
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", "text\n");
  WriteFile(dir + "/facts.jsonl", "{}\n");
  WriteFile(dir + "/sweep.yaml",
            "name: t\nmodels: [m]\nmethods: [{method: gptq, wbits: [4]}]\n"
            "tasks: [wikitext2, facts.jsonl]\ncalibration: {source: c4}\n");
  InputCheckOptions options;
  options.data_dir = dir + "/data";
  CHECK(CheckSweepInputs(ExpandFile(dir + "/sweep.yaml"), options).empty());
}

TEST_CASE("CheckSweepInputs names a calibration source whose training file is missing though its "
          "folder holds the evaluation's") {
  const std::string dir = testing::ScratchDir("sweep_inputs_calibration_split");
  WriteCompleteModel(dir + "/m");
  // What the C4 and WikiText-2 evaluations read, but not the training files calibration reads.
  WriteFile(dir + "/data/c4/c4-validation.00000-of-00008.json", "{}\n");
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", "text\n");
  WriteFile(dir + "/c4.yaml",
            "name: t\nmodels: [m]\nmethods: [{method: gptq, wbits: [4]}]\n"
            "tasks: [c4, wikitext2]\ncalibration: {source: c4}\n");
  WriteFile(dir + "/wiki.yaml",
            "name: t\nmodels: [m]\nmethods: [{method: gptq, wbits: [4]}]\n"
            "tasks: [wikitext2]\ncalibration: {source: wikitext2}\n");
  InputCheckOptions options;
  options.data_dir = dir + "/data";
  CHECK(CheckSweepInputs(ExpandFile(dir + "/c4.yaml"), options) ==
        std::vector<std::string>{"calibration source c4: no C4 training file (c4-train.*.json) in " +
                                 dir + "/data/c4"});
  CHECK(CheckSweepInputs(ExpandFile(dir + "/wiki.yaml"), options) ==
        std::vector<std::string>{"calibration source wikitext2: no " + dir +
                                 "/data/wikitext2/wiki.train.raw"});
  // With the training files there, nothing is missing.
  WriteFile(dir + "/data/c4/c4-train.00000-of-01024.json", "{}\n");
  WriteFile(dir + "/data/wikitext2/wiki.train.raw", "text\n");
  CHECK(CheckSweepInputs(ExpandFile(dir + "/c4.yaml"), options).empty());
  CHECK(CheckSweepInputs(ExpandFile(dir + "/wiki.yaml"), options).empty());
}
