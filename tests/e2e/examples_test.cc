// The shipped example sweeps (examples/sweeps/*.yaml) run end to end through `bitsweep local`
// (a private PostgreSQL, the coordinator, two workers) on the shipped demo model (models/demo):
//   - demo.yaml runs whole and verbatim: its 36 jobs are cheap on the demo model. The test lays
//     out a copy of the files it names, at the paths it names relative to itself, as
//     scripts/demo writes them (calibration text from bitsweep-make-corpus, the facts task).
//   - study.yaml is the study's whole grid (7 Qwen3 models x 28 configurations x 9 tasks, counted
//     by tests/common/sweep_test.cc); its models are not here, and its grid would take days. It
//     runs as a bounded subset, written from the file itself: every method entry, option, task
//     (MMLU 5-shot included), calibration source and evaluation setting (seqlen 2048, batch 8,
//     bf16) as the file says, with only these changes: the seven models become one copy of the
//     demo model (folder Qwen3-0.6B); `resources` are dropped (`bitsweep local`'s workers offer
//     no memory figure, so a job asking for memory_gb 24 would never be leased); each list of
//     widths is cut to one (wbits 4 where listed, abits 8); `eval.limit: 2` (2 windows per
//     perplexity task, 2 documents per accuracy task, 2 per MMLU subject); calibration
//     `nsamples: 4`, from a text file of the demo's training distribution (bitsweep-make-corpus)
//     instead of `c4`: `source: c4` reads a C4 training file (c4-train.*.json), which the shared
//     data does not hold (it holds the validation documents the C4 evaluation scores). It needs
//     the study's task data (../shared/data): without it, it says so and stops.
#include <sys/wait.h>
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;

struct Run {
  int code = -1;
  std::string out, err;
};

// `bitsweep args`, run from `dir` (not the source tree: the examples' paths resolve against the
// sweep file's folder, whatever the working directory).
Run Bitsweep(const std::string& args, const std::string& dir) {
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const int s = std::system(("cd " + dir + " && " + bitsweep::testing::BinaryDir() +
                             "/cli/bitsweep " + args + " > " + out + " 2> " + err + " < /dev/null")
                                .c_str());
  return {WIFEXITED(s) ? WEXITSTATUS(s) : -1, Slurp(out), Slurp(err)};
}

std::string LocalArgs(const std::string& dir, const std::string& data_dir) {
  return " --workers 2 --threads-per-worker 1 --state-dir " + dir + "/state --data-dir " +
         data_dir + " --format json";
}

// scripts/demo's facts task, line for line: sums ("Three plus four is" -> seven) and weekdays,
// each after the scene sentence, the answer moved to a rotating position.
std::string DemoFacts() {
  const std::vector<std::string> num = {"zero",  "one",   "two",  "three", "four",   "five",  "six",
                                        "seven", "eight", "nine", "ten",   "eleven", "twelve"};
  const std::vector<std::string> days = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday"};
  auto line = [](const std::string& context, const std::vector<std::string>& choices, int gold) {
    return nlohmann::json{{"context", context}, {"choices", choices}, {"gold", gold}}.dump() + "\n";
  };
  std::string text;
  int i = 0;
  for (int a = 0; a <= 6; ++a) {
    for (int b = 0; b <= 5; ++b) {
      const int s = a + b;
      std::vector<std::string> c = {num[s], num[(s + 1) % 13], num[(s + 2) % 13],
                                    num[(s + 12) % 13]};
      const int g = i++ % 4;
      std::swap(c[0], c[g]);
      std::string first = num[a];
      first[0] = static_cast<char>(std::toupper(first[0]));
      text += line("Ines lived near the harbor. " + first + " plus " + num[b] + " is", c, g);
    }
  }
  for (int d = 0; d < 7; ++d) {
    std::vector<std::string> c = {days[(d + 1) % 7], days[(d + 2) % 7], days[(d + 4) % 7]};
    const int g = d % 3;
    std::swap(c[0], c[g]);
    text += line("Ines lived near the harbor. The day after " + days[d] + " is", c, g);
  }
  return text;
}

// The rows of `bitsweep local --format json` by metric, every job key once per metric.
std::map<std::string, std::vector<nlohmann::json>> RowsByMetric(const std::string& out,
                                                                std::set<std::string>* jobs) {
  std::map<std::string, std::vector<nlohmann::json>> by_metric;
  std::set<std::pair<std::string, std::string>> cells;
  for (const auto& row : nlohmann::json::parse(out)) {
    const std::string key = row["job_key"].get<std::string>();
    jobs->insert(key);
    CHECK(cells.insert({key, row["metric"].get<std::string>()}).second);
    by_metric[row["metric"].get<std::string>()].push_back(row);
  }
  return by_metric;
}

// The example as shipped, beside what it names by relative paths (../../models/demo,
// ../../build/demo/...), as a checkout holds them after scripts/demo.
void LayOutDemo(const std::string& root) {
  const std::string src = bitsweep::testing::SourceDir();
  fs::create_directories(root + "/examples/sweeps");
  fs::copy_file(src + "/examples/sweeps/demo.yaml", root + "/examples/sweeps/demo.yaml");
  fs::create_directories(root + "/models");
  fs::copy(src + "/models/demo", root + "/models/demo", fs::copy_options::recursive);
  fs::create_directories(root + "/build/demo");
  REQUIRE(std::system((bitsweep::testing::BinaryDir() + "/tools/bitsweep-make-corpus --out " +
                       root + "/build/demo/calib.txt --seed 1 --bytes 300000 --joined > " + root +
                       "/corpus.log 2>&1")
                          .c_str()) == 0);
  WriteFile(root + "/build/demo/facts.jsonl", DemoFacts());
}

// "rtn w1", "fp w16", "smoothquant w4a8", ... of a results row's spec.
std::string ConfigOf(const nlohmann::json& row) {
  const auto& q = row["spec"]["quant"];
  std::string label = q["method"].get<std::string>() + " w" + std::to_string(q["wbits"].get<int>());
  if (q["abits"].get<int>() != 0) label += "a" + std::to_string(q["abits"].get<int>());
  for (const auto& [name, value] : q["options"].items()) {
    if (name == "act_order" && value == "true") label += " act_order";
  }
  return label;
}

}  // namespace

TEST_CASE("examples/sweeps/demo.yaml with early_abort skips only RTN w1's other tasks, and a "
          "sweep without the rule revives them",
          "[e2e][pg][grpc][slow]") {
  const std::string root = bitsweep::testing::ScratchDir("e2e_early_abort");
  LayOutDemo(root);
  WriteFile(root + "/examples/sweeps/demo-abort.yaml",
            Slurp(root + "/examples/sweeps/demo.yaml") +
                "early_abort: {ppl_ratio: 3.0, on: wikitext2}\n");
  const std::string args = LocalArgs(root, root + "/models/demo/heldout");
  Run r = Bitsweep("local examples/sweeps/demo-abort.yaml" + args, root);
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::map<std::string, std::set<std::string>> tasks_run, tasks_skipped;  // by configuration
  std::map<std::string, double> wikitext2;                                 // ppl by configuration
  for (const auto& row : nlohmann::json::parse(r.out)) {
    const std::string config = ConfigOf(row);
    std::string task = row["spec"]["eval"]["task"].get<std::string>();
    if (task.size() > 6 && task.substr(task.size() - 6) == ".jsonl") task = "facts";
    if (row.contains("skipped")) {
      INFO(row.dump());
      CHECK_THAT(row["skipped"].get<std::string>(),
                 Catch::StartsWith("early abort: wikitext2 ppl ") &&
                     Catch::EndsWith("(early_abort: {ppl_ratio: 3, on: wikitext2})"));
      tasks_skipped[config].insert(task);
      continue;
    }
    tasks_run[config].insert(task);
    if (task == "wikitext2") wikitext2[config] = row["value"].get<double>();
  }
  // RTN w1 diverges (ppl ~965 against FP ~6.3): its C4 and facts jobs are skipped.
  REQUIRE(wikitext2.count("fp w16") == 1);
  REQUIRE(wikitext2.count("rtn w1") == 1);
  CHECK(wikitext2["rtn w1"] > 3 * wikitext2["fp w16"]);
  CHECK(tasks_skipped == std::map<std::string, std::set<std::string>>{
                             {"rtn w1", {"c4", "facts"}}});
  CHECK(tasks_run["rtn w1"] == std::set<std::string>{"wikitext2"});
  // Every other configuration runs every task.
  CHECK(tasks_run.size() == 12);
  for (const auto& [config, tasks] : tasks_run) {
    INFO(config);
    if (config == "rtn w1") continue;
    CHECK(wikitext2[config] <= 3 * wikitext2["fp w16"]);
    CHECK(tasks == std::set<std::string>{"wikitext2", "c4", "facts"});
  }
  CHECK_THAT(r.err, Catch::Contains("skipped 2 (saved ~"));

  // The demo sweep without the rule, on the same database: the two skipped jobs run now.
  Run again = Bitsweep("local examples/sweeps/demo.yaml" + args, root);
  INFO(again.err);
  REQUIRE(again.code == 0);
  std::set<std::string> rtn1, jobs;
  for (const auto& row : nlohmann::json::parse(again.out)) {
    CHECK_FALSE(row.contains("skipped"));
    jobs.insert(row["job_key"].get<std::string>());
    if (ConfigOf(row) == "rtn w1") rtn1.insert(row["spec"]["eval"]["task"].get<std::string>());
  }
  CHECK(jobs.size() == 36);
  CHECK(rtn1.size() == 3);
}

TEST_CASE("examples/sweeps/demo.yaml runs whole through bitsweep local on the demo model",
          "[e2e][pg][grpc][slow]") {
  const std::string root = bitsweep::testing::ScratchDir("e2e_example_demo");
  LayOutDemo(root);

  Run r = Bitsweep(
      "local examples/sweeps/demo.yaml" + LocalArgs(root, root + "/models/demo/heldout"), root);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("\n  skipped ") == std::string::npos);  // no combination left out
  std::set<std::string> jobs;
  auto by_metric = RowsByMetric(r.out, &jobs);
  // 12 configurations (fp; rtn, gptq, awq at w3 and w4 g64; rtn w1; gptq w4 act_order;
  // smoothquant w4a8 and w8a8; billm) x 3 tasks (wikitext2, c4, the facts task).
  CHECK(jobs.size() == 36);
  CHECK(by_metric["ppl"].size() == 24);
  CHECK(by_metric["acc"].size() == 12);
  std::set<std::string> methods;
  for (const auto& row : by_metric["ppl"]) {
    methods.insert(row["spec"]["quant"]["method"].get<std::string>());
    CHECK(row["spec"]["model"] == root + "/models/demo");
    CHECK(row["spec"]["eval"]["limit"] == 32);
    if (row["spec"]["quant"]["method"] == "fp") {
      INFO(row.dump());
      CHECK(std::isfinite(row["value"].get<double>()));
      CHECK(row["value"].get<double>() > 1.0);
    }
  }
  CHECK(methods == std::set<std::string>{"fp", "rtn", "gptq", "awq", "smoothquant", "billm"});
  for (const auto& row : by_metric["acc"]) {
    CHECK(row["n"] == 49);  // every question of the facts task
  }
}

TEST_CASE(
    "examples/sweeps/study.yaml runs as a bounded subset through bitsweep local: one demo model, "
    "one width per method, 2 documents per task",
    "[e2e][pg][grpc][slow][data]") {
  REQUIRE_SHARED_DATA(data);
  const std::string root = bitsweep::testing::ScratchDir("e2e_example_study");
  const std::string src = bitsweep::testing::SourceDir();
  YAML::Node study = YAML::LoadFile(src + "/examples/sweeps/study.yaml");
  REQUIRE(study["models"].size() == 7);
  REQUIRE(study["models"][0].as<std::string>() == "/models/Qwen3-0.6B");
  fs::create_directories(root + "/models");
  fs::copy(src + "/models/demo", root + "/models/Qwen3-0.6B", fs::copy_options::recursive);
  YAML::Node models(YAML::NodeType::Sequence);
  models.push_back(root + "/models/Qwen3-0.6B");
  study["models"] = models;
  study.remove("resources");
  // One width per method entry, and what each entry asks for besides left as it is.
  std::vector<std::string> methods;
  for (YAML::Node entry : study["methods"]) {
    auto cut = [&](const char* key, int preferred) {
      if (!entry[key]) return;
      int chosen = entry[key][0].as<int>();
      for (const YAML::Node& w : entry[key]) {
        if (w.as<int>() == preferred) chosen = preferred;
      }
      YAML::Node one(YAML::NodeType::Sequence);
      one.push_back(chosen);
      entry[key] = one;
    };
    cut("wbits", 4);
    cut("abits", 8);
    if (entry["method"].IsSequence()) {
      for (const YAML::Node& m : entry["method"]) methods.push_back(m.as<std::string>());
    } else {
      methods.push_back(entry["method"].as<std::string>());
    }
  }
  REQUIRE(methods == std::vector<std::string>{"rtn", "gptq", "awq", "smoothquant", "billm"});
  REQUIRE(study["calibration"]["source"].as<std::string>() == "c4");
  REQUIRE(
      std::system((bitsweep::testing::BinaryDir() + "/tools/bitsweep-make-corpus --out " + root +
                   "/calib.txt --seed 1 --bytes 100000 --joined > " + root + "/corpus.log 2>&1")
                      .c_str()) == 0);
  study["calibration"]["source"] = root + "/calib.txt";
  study["eval"]["limit"] = 2;
  study["calibration"]["nsamples"] = 4;
  YAML::Emitter yaml;
  yaml << study;
  fs::create_directories(root + "/examples/sweeps");
  WriteFile(root + "/examples/sweeps/study-subset.yaml", std::string(yaml.c_str()) + "\n");
  INFO(yaml.c_str());

  // Absolute: the run starts in `root`, and $BITSWEEP_DATA_DIR may be relative.
  const std::string data_dir = fs::absolute(data).lexically_normal().string();
  Run r = Bitsweep("local examples/sweeps/study-subset.yaml" + LocalArgs(root, data_dir), root);
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::set<std::string> jobs;
  auto by_metric = RowsByMetric(r.out, &jobs);
  // fp, rtn w4 g128, gptq w4 g128, awq w4 g128, smoothquant w4a8, billm w1; 9 tasks each.
  CHECK(jobs.size() == 6 * 9);
  CHECK(by_metric["ppl"].size() == 6 * 2);  // wikitext2, c4
  CHECK(by_metric["acc"].size() == 6 * 7);  // piqa, arc_easy, arc_challenge, hellaswag,
                                            // winogrande, boolq, mmlu
  std::set<std::string> tasks;
  for (const auto& [metric, rows] : by_metric) {
    for (const auto& row : rows) {
      const auto& spec = row["spec"];
      tasks.insert(spec["eval"]["task"].get<std::string>());
      CHECK(spec["eval"]["dtype"] == "bf16");
      CHECK(spec["eval"]["batch_size"] == 8);
      CHECK(spec["eval"]["limit"] == 2);
      if (spec["eval"]["task"] == "mmlu") CHECK(spec["eval"]["num_fewshot"] == 5);
      if (spec["eval"]["task"] == "wikitext2") CHECK(spec["eval"]["seqlen"] == 2048);
      if (!spec["calibration"].is_null()) {
        CHECK(spec["calibration"]["source"] == root + "/calib.txt");
        CHECK(spec["calibration"]["nsamples"] == 4);
      }
      if (spec["quant"]["method"] == "smoothquant") CHECK(spec["quant"]["abits"] == 8);
    }
  }
  CHECK(tasks.size() == 9);
}
