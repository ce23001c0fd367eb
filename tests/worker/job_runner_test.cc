#include "worker/job_runner.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/tiny_model.h"
#include "tests/testing/paths.h"
#include "worker/job_process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::JobSpec;

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

JobSpec Spec(const std::string& model, const std::string& method, const std::string& task) {
  JobSpec s;
  s.model = model;
  s.quant.method = method;
  if (method == "rtn") {
    s.quant.wbits = 4;
    s.quant.group_size = 16;
  }
  s.eval.task = task;
  auto n = bitsweep::NormalizeJobSpec(s);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return *n;
}

// The child's options with artifacts under `dir` and no data folder.
bitsweep::worker::ChildOptions ArtifactsIn(const std::string& dir) {
  bitsweep::worker::ChildOptions options;
  options.artifact_root = dir + "/artifacts";
  return options;
}

}  // namespace

TEST_CASE("A job quantizes its artifact once, reuses it, and evaluates the quantized model",
          "[worker]") {
  const std::string dir = bitsweep::testing::ScratchDir("job_runner");
  REQUIRE(bitsweep::model::WriteTinyModel(dir + "/model", {}).ok());
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"one and one\", \"choices\": [\"two\", \"three\"], \"gold\": 0}\n"
            "{\"context\": \"sky\", \"choices\": [\"blue\", \"green\", \"loud\"], \"gold\": 0}\n");
  bitsweep::worker::RunnerConfig config;
  config.artifact_root = dir + "/artifacts";

  const JobSpec fp = Spec(dir + "/model", "fp", dir + "/facts.jsonl");
  auto base = bitsweep::worker::RunJob(fp, config, nullptr);
  INFO(base.status().ToString());
  REQUIRE(base.ok());
  CHECK_FALSE(fs::exists(dir + "/artifacts"));  // the baseline needs no artifact
  REQUIRE(base->metrics.size() == 2);
  CHECK(base->metrics[0].name == "acc");
  CHECK(base->metrics[0].n == 2);

  const JobSpec rtn = Spec(dir + "/model", "rtn", dir + "/facts.jsonl");
  std::vector<double> fractions;
  auto first = bitsweep::worker::RunJob(
      rtn, config, [&](double f, const std::string&) { fractions.push_back(f); });
  INFO(first.status().ToString());
  REQUIRE(first.ok());
  CHECK_FALSE(first->artifact_reused);
  const std::string artifact = bitsweep::worker::ArtifactDir(config.artifact_root, rtn);
  CHECK(fs::exists(artifact + "/quantization_config.json"));
  REQUIRE(!fractions.empty());
  CHECK(fractions.back() == Approx(1.0));
  auto prov = nlohmann::json::parse(first->provenance_json);
  CHECK(prov["job_key"] == rtn.JobKey());
  CHECK(prov["device"] == "cpu");
  CHECK_THAT(prov["quant"].get<std::string>(), Catch::Contains("rtn w4 g16"));
  // Per-layer losses of the artifact: each layer's linears summed, as the artifact lists them.
  std::ifstream qf(artifact + "/quantization_config.json");
  const nlohmann::json q = nlohmann::json::parse(qf);
  double layer1 = 0;
  for (const auto& l : q["linears"]) {
    if (l["name"].get<std::string>().rfind("model.layers.1.", 0) == 0) {
      layer1 += l["loss"].get<double>();
    }
  }
  REQUIRE(prov["layer_losses"].size() == 2);  // the tiny model's two decoder layers
  CHECK(prov["layer_losses"][1]["layer"] == 1);
  CHECK(prov["layer_losses"][1]["linears"] == 7);
  CHECK(prov["layer_losses"][1]["loss"].get<double>() == Approx(layer1));

  auto second = bitsweep::worker::RunJob(rtn, config, nullptr);
  REQUIRE(second.ok());
  CHECK(second->artifact_reused);
  CHECK(second->metrics[0].value == first->metrics[0].value);
  // A reused artifact reports the same losses.
  CHECK(nlohmann::json::parse(second->provenance_json)["layer_losses"] == prov["layer_losses"]);
}

TEST_CASE("A job child reports bad specs as non-retryable errors naming the problem", "[worker]") {
  const std::string dir = bitsweep::testing::ScratchDir("job_child");
  WriteFile(dir + "/spec.json", "{\"model\": 3}");
  const int code = bitsweep::worker::RunJobChild(dir + "/spec.json", dir + "/result.json",
                                                 dir + "/progress", ArtifactsIn(dir));
  CHECK(code == 2);
  auto r = nlohmann::json::parse(std::ifstream(dir + "/result.json"));
  CHECK_THAT(r["error"].get<std::string>(), Catch::Contains("model"));

  JobSpec missing;
  missing.model = dir + "/no-such-model";
  missing.eval.task = dir + "/facts.jsonl";
  auto n = bitsweep::NormalizeJobSpec(missing);
  REQUIRE(n.ok());
  WriteFile(dir + "/spec2.json", bitsweep::JobSpecToJson(*n));
  const int code2 = bitsweep::worker::RunJobChild(dir + "/spec2.json", dir + "/result2.json",
                                                  dir + "/progress", ArtifactsIn(dir));
  CHECK(code2 != 0);
  auto r2 = nlohmann::json::parse(std::ifstream(dir + "/result2.json"));
  CHECK_THAT(r2["error"].get<std::string>(), Catch::Contains("no-such-model"));
}

TEST_CASE("A job whose model cannot fit its memory offer even layer-streamed fails for good, "
          "naming the model, the need and the offer",
          "[worker]") {
  const std::string dir = bitsweep::testing::ScratchDir("job_child_cannot_fit");
  REQUIRE(bitsweep::model::WriteTinyModel(dir + "/model", {}).ok());
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"sky\", \"choices\": [\"blue\", \"green\"], \"gold\": 0}\n");
  WriteFile(dir + "/spec.json",
            bitsweep::JobSpecToJson(Spec(dir + "/model", "fp", dir + "/facts.jsonl")));
  bitsweep::worker::ChildOptions options = ArtifactsIn(dir);
  options.max_memory_bytes = 64 << 10;  // 64 KiB: not one layer of the tiny model
  const int code = bitsweep::worker::RunJobChild(dir + "/spec.json", dir + "/result.json",
                                                 dir + "/progress", options);
  CHECK(code == bitsweep::worker::kJobExitBadInput);  // not retried
  auto r = nlohmann::json::parse(std::ifstream(dir + "/result.json"));
  const std::string error = r["error"].get<std::string>();
  CHECK_THAT(error, Catch::Contains("model " + dir + "/model cannot run on cpu even "
                                    "layer-streamed") &&
                        Catch::Contains("64 KiB is too small: one decoder layer (layer 0: "));
}
