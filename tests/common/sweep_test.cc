#include "common/sweep.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "tests/testing/paths.h"

using namespace bitsweep;

namespace {

ExpandedSweep Expand(const std::string& yaml) {
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  ExpandOptions o;
  o.model_root = testing::SourceDir();
  auto e = ExpandSweep(*spec, o);
  INFO(e.status().ToString());
  REQUIRE(e.ok());
  return *e;
}

std::string ParseError(const std::string& yaml) {
  auto spec = ParseSweepYaml(yaml, "t.yaml");
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

const char* kHeader = "name: t\nmodels: [/models/absent]\ntasks: [wikitext2]\n";

}  // namespace

TEST_CASE("The study sweep expands to 7 models x 28 configs x 9 tasks, skipping 1-bit GPTQ/AWQ") {
  auto spec = ParseSweepFile(testing::SourceDir() + "/examples/sweeps/study.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  CHECK(spec->name == "qwen3-study");
  CHECK(spec->models.size() == 7);
  auto e = ExpandSweep(*spec);
  REQUIRE(e.ok());
  // fp + rtn w1..8 + gptq w2..8 + awq w2..8 + smoothquant w{4,8}a{4,8} + billm w1 = 28.
  CHECK(e->jobs.size() == 7 * 28 * 9);
  REQUIRE(e->skipped.size() == 2);
  CHECK(e->skipped[0].description == "gptq w1 g128");
  CHECK(e->skipped[0].reason == "gptq takes 2..8 weight bits, not 1");
  CHECK(e->skipped[1].description == "awq w1 g128");

  std::map<std::string, int> per_method;
  std::set<std::string> artifacts, job_keys;
  for (const JobSpec& j : e->jobs) {
    ++per_method[j.quant.method];
    artifacts.insert(j.ArtifactKey());
    job_keys.insert(j.JobKey());
    REQUIRE(JobSpecToJson(*NormalizeJobSpec(j)) == JobSpecToJson(j));  // already normalised
  }
  CHECK(job_keys.size() == e->jobs.size());
  CHECK(per_method["fp"] == 7 * 9);
  CHECK(per_method["rtn"] == 7 * 8 * 9);
  CHECK(per_method["smoothquant"] == 7 * 4 * 9);
  CHECK(per_method["billm"] == 7 * 9);
  CHECK(artifacts.size() == 7 * 28);  // one quantized model serves all nine tasks

  const JobSpec& first = e->jobs.front();
  CHECK(first.model == "/models/Qwen3-0.6B");
  CHECK(first.quant.method == "fp");
  CHECK(first.resources.memory_gb == 24);
  for (const JobSpec& j : e->jobs) {
    if (j.model == "/models/Qwen3-32B") {
      CHECK(j.resources.tp == 2);
      CHECK(j.resources.devices == 2);
    }
    if (j.eval.task == "mmlu") CHECK(j.eval.num_fewshot == 5);
    if (j.quant.method == "awq" && j.calibration) CHECK(j.calibration->seqlen == 512);
  }
}

TEST_CASE("The demo sweep expands to 12 configs x 3 tasks on the shipped model") {
  auto spec = ParseSweepFile(testing::SourceDir() + "/examples/sweeps/demo.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  ExpandOptions o;
  o.model_root = testing::SourceDir();
  auto e = ExpandSweep(*spec, o);
  REQUIRE(e.ok());
  CHECK(e->skipped.empty());
  CHECK(e->jobs.size() == 36);
  for (const JobSpec& j : e->jobs) {
    // Relative paths resolve against the sweep file's folder (examples/sweeps/../../models).
    CHECK(j.model == testing::SourceDir() + "/models/demo");
    const bool ppl = j.eval.task == "wikitext2" || j.eval.task == "c4";
    CHECK(j.eval.limit == (ppl ? 32 : 0));
    CHECK(j.eval.seqlen == (ppl ? 256 : 0));
    if (j.calibration) {
      CHECK(j.calibration->source == testing::SourceDir() + "/build/demo/calib.txt");
      CHECK(j.calibration->nsamples == 32);
      CHECK(j.calibration->seed ==
            (j.quant.method == "gptq" || j.quant.method == "billm" ? 0 : 42));
    }
  }
}

TEST_CASE("Nonsense combinations are skipped once each with the reason") {
  const ExpandedSweep e = Expand(R"(
name: t
tasks: [wikitext2]
models: [/models/a, /models/b]
methods:
  - {method: billm, wbits: [1, 4]}
  - {method: gptq, wbits: 4, abits: [0, 8], group: 128}
  - {method: smoothquant, wbits: 8, abits: [1, 8], group: [-1, 128]}
)");
  std::map<std::string, std::string> skipped;
  for (const auto& s : e.skipped) skipped[s.description] = s.reason;
  CHECK(skipped.size() == e.skipped.size());  // listed once, not once per model
  CHECK(skipped.at("billm w4") == "billm binarizes weights: it takes 1 weight bit, not 4");
  CHECK(skipped.at("gptq w4a8 g128") == "gptq is weight-only: activation bits (8) do not apply");
  CHECK(skipped.at("smoothquant w8a1") == "smoothquant takes 2..8 activation bits, not 1");
  CHECK(skipped.at("smoothquant w8a8 g128") ==
        "smoothquant quantizes weights per channel: group 128 does not apply");
  CHECK(e.skipped.size() == 5);  // + smoothquant w8a1 g128
  // Per model: fp, billm w1, gptq w4 g128, smoothquant w8a8; one task.
  CHECK(e.jobs.size() == 2 * 4);
}

TEST_CASE("Groups that do not divide the model's in_features are skipped naming config.json") {
  const ExpandedSweep e = Expand(R"(
name: t
models: [models/demo, /models/absent]
methods: [{method: rtn, wbits: 4, group: [64, 96, 512]}]
tasks: [wikitext2]
baseline: false
)");
  // models/demo: hidden 256, intermediate 512, 4 heads x 64: 64 divides, 96 and 512 do not.
  REQUIRE(e.skipped.size() == 2);
  CHECK(e.skipped[0].description == "models/demo: rtn w4 g96");
  CHECK(e.skipped[0].reason == "group 96 does not divide hidden_size = 256 (config.json)");
  CHECK(e.skipped[1].description == "models/demo: rtn w4 g512");
  // The absent model keeps all three: its shapes are unknown here.
  CHECK(e.jobs.size() == 1 + 3);
}

TEST_CASE("Calibration comes from the method entry, then the sweep, then the method's defaults") {
  const ExpandedSweep e = Expand(std::string(kHeader) + R"(
baseline: false
calibration: {source: wikitext2, seed: 7}
methods:
  - {method: gptq, wbits: 4, calibration: {nsamples: 16}}
  - {method: awq, wbits: 4}
  - {method: rtn, wbits: 4}
)");
  REQUIRE(e.jobs.size() == 3);
  const CalibrationConfig& gptq = *e.jobs[0].calibration;
  CHECK(gptq.source == "wikitext2");
  CHECK(gptq.seed == 7);
  CHECK(gptq.nsamples == 16);
  CHECK(gptq.seqlen == 2048);
  const CalibrationConfig& awq = *e.jobs[1].calibration;
  CHECK(awq.nsamples == 128);
  CHECK(awq.seqlen == 512);
  CHECK(awq.seed == 7);
  CHECK_FALSE(e.jobs[2].calibration.has_value());
}

TEST_CASE("Combinations that mean the same job are expanded once") {
  const ExpandedSweep e = Expand(std::string(kHeader) + R"(
methods:
  - {method: rtn, wbits: [4, 4], group: 128}
  - {method: rtn, wbits: 4, options: {released_code: false}}
  - {method: rtn, wbits: 4, group: [64, 128], options: {released_code: true}}
  - {method: gptq, wbits: 4, options: {act_order: false, percdamp: 0.010}}
  - {method: gptq, wbits: 4}
)");
  // fp, rtn w4 g128, rtn released (per channel, whatever the group), gptq w4 g128.
  CHECK(e.jobs.size() == 4);
}

TEST_CASE("The FP baseline job is the same in two different sweeps") {
  const ExpandedSweep a = Expand(std::string(kHeader) + "methods: [{method: rtn, wbits: 4}]\n");
  const ExpandedSweep b = Expand(std::string(kHeader) +
                                 "priority: 5\ncalibration: {nsamples: 8}\n"
                                 "methods: [{method: gptq, wbits: 3}]\n");
  REQUIRE(a.jobs.front().quant.method == "fp");
  REQUIRE(b.jobs.front().quant.method == "fp");
  CHECK(a.jobs.front().JobKey() == b.jobs.front().JobKey());
}

TEST_CASE("Malformed sweeps are errors naming the field and line:column") {
  CHECK(ParseError(std::string(kHeader) + "method: [{method: rtn, wbits: 4}]\n") ==
        "t.yaml:4:1: method: unknown key (allowed: name, priority, max_attempts, baseline, "
        "resources, models, methods, tasks, calibration, eval, early_abort, sensitivity, run_tag)");
  CHECK(ParseError(std::string(kHeader) + "methods:\n  - method: rtn\n    wbits: four\n") ==
        "t.yaml:6:12: methods[0].wbits: expected an integer, got \"four\"");
  CHECK(ParseError(std::string(kHeader) + "methods:\n  - {method: gtpq, wbits: 4}\n") ==
        "t.yaml:5:14: methods[0].method: unknown method \"gtpq\": did you mean \"gptq\"? "
        "(known: fp, rtn, gptq, awq, "
        "smoothquant, billm)");
  CHECK_THAT(ParseError(std::string(kHeader) +
                        "methods:\n  - {method: gptq, wbits: 4, options: {act_ordr: true}}\n"),
             Catch::StartsWith("t.yaml:5:40: methods[0].options.act_ordr: unknown option "
                               "\"act_ordr\" for gptq"));
  CHECK_THAT(ParseError(std::string(kHeader) +
                        "methods:\n  - {method: gptq, wbits: 4, options: {alpha: 0.5}}\n"),
             Catch::Contains("option \"alpha\" applies to smoothquant, not gptq"));
  CHECK_THAT(ParseError(std::string(kHeader) +
                        "methods:\n  - {method: awq, wbits: 4, options: {awq_n_grid: 0}}\n"),
             Catch::StartsWith("t.yaml:5:51: methods[0].options.awq_n_grid: option awq_n_grid: "
                               "expected an integer in 1..1000"));
  CHECK(ParseError(std::string(kHeader) + "methods:\n  - {method: gptq}\n") ==
        "t.yaml:5:5: methods[0].wbits: missing (gptq takes 2..8)");
  CHECK(ParseError(std::string(kHeader) + "methods:\n  - {method: rtn, wbits: 4, group: 0}\n") ==
        "t.yaml:5:36: methods[0].group: must be -1 (per channel) or positive");
  CHECK(
      ParseError("name: t\nmodels: [/m]\ntasks: [wikitext2, hellaswagg]\n") ==
      "t.yaml:3:20: tasks[1]: unknown task \"hellaswagg\": did you mean \"hellaswag\"? "
      "(known: wikitext2, c4, piqa, "
      "arc_easy, arc_challenge, hellaswag, winogrande, boolq, mmlu, or a path to a .jsonl file of "
      "{context, choices, gold} lines)");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [{task: c4, num_fewshot: 5}]\n") ==
        "t.yaml:3:9: tasks[0].num_fewshot: perplexity tasks take no shots");
  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, tp: 4, devices: 2}\ntasks: [c4]\n") ==
        "t.yaml:3:5: models[0].tp: tp 4 exceeds devices 2");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\neval: {dtype: fp16}\n") ==
        "t.yaml:4:15: eval.dtype: fp16 is not accepted here (use fp32 or bf16)");
  CHECK(ParseError("name: t\nmodels: [/m]\n") == "t.yaml:1:1: tasks: missing");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\nmodels: [/n]\n") ==
        "t.yaml:4:1: models: duplicate key");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\nbaseline: maybe\n") ==
        "t.yaml:4:11: baseline: expected true or false");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\nbaseline: false\n") ==
        "t.yaml:1:1: methods: no methods and baseline: false: the sweep has no jobs");
  CHECK_THAT(ParseError("name: t\nmodels: [/m\ntasks: [c4]\n"), Catch::StartsWith("t.yaml:3:"));
  CHECK_THAT(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\n"
                        "methods: [{method: fp}]\n"),
             Catch::Contains("baseline: true"));
}

TEST_CASE(
    "Method and task names in a sweep ignore case and are stored as the catalog spells them") {
  const ExpandedSweep e = Expand(std::string("name: t\nmodels: [/models/absent]\n") +
                                 "tasks: [WikiText2, {task: MMLU, limit: 4}]\n"
                                 "methods: [{method: [GPTQ, Rtn], wbits: 4}]\n");
  std::set<std::string> methods, tasks;
  for (const JobSpec& job : e.jobs) {
    methods.insert(job.quant.method);
    tasks.insert(job.eval.task);
  }
  CHECK(methods == std::set<std::string>{"fp", "gptq", "rtn"});
  CHECK(tasks == std::set<std::string>{"wikitext2", "mmlu"});
  // The same jobs (keys) as the sweep written in lower case.
  const ExpandedSweep lower = Expand(std::string("name: t\nmodels: [/models/absent]\n") +
                                     "tasks: [wikitext2, {task: mmlu, limit: 4}]\n"
                                     "methods: [{method: [gptq, rtn], wbits: 4}]\n");
  REQUIRE(lower.jobs.size() == e.jobs.size());
  for (size_t i = 0; i < e.jobs.size(); ++i) CHECK(e.jobs[i].JobKey() == lower.jobs[i].JobKey());
}

TEST_CASE("A misspelt method or task in a sweep suggests the closest name") {
  CHECK_THAT(ParseError(std::string(kHeader) + "methods:\n  - {method: smoothqant, wbits: 4}\n"),
             Catch::Contains("did you mean \"smoothquant\"?"));
  CHECK_THAT(ParseError("name: t\nmodels: [/m]\ntasks: [arc-easy]\n"),
             Catch::Contains("did you mean \"arc_easy\"?"));
  // Nothing close: no suggestion, only the known names.
  CHECK_THAT(ParseError("name: t\nmodels: [/m]\ntasks: [squad]\n"),
             !Catch::Contains("did you mean") && Catch::Contains("known: wikitext2"));
}

TEST_CASE("A missing sweep file is an error naming the file") {
  auto spec = ParseSweepFile("/nonexistent/sweep.yaml");
  REQUIRE_FALSE(spec.ok());
  CHECK_THAT(std::string(spec.status().message()), Catch::StartsWith("/nonexistent/sweep.yaml"));
}

TEST_CASE(
    "A sweep whose grid is over the job limit is refused before any job is built, naming "
    "the count and the limit") {
  // About 14 KB of YAML asking for 400 models x 21,001 configurations x 100 tasks: 8.4 x 10^8
  // jobs, which expanding would need hundreds of GB for. Counted, not expanded, it is refused at
  // once.
  std::string yaml = "name: huge\nmodels: [";
  for (int i = 0; i < 400; ++i)
    yaml += (i ? ", " : "") + std::string("/m/model-") + std::to_string(i);
  yaml += "]\nmethods:\n  - {method: [rtn, gptq, awq], wbits: [2, 3, 4, 5, 6, 7, 8], group: [";
  for (int g = 1; g <= 1000; ++g) yaml += (g > 1 ? "," : "") + std::to_string(g);
  yaml += "]}\ntasks: [";
  for (int t = 0; t < 100; ++t) yaml += t ? ", c4" : "c4";
  yaml += "]\n";
  CHECK(yaml.size() < 40 * 1024);
  auto spec = ParseSweepYaml(yaml, "huge.yaml");
  REQUIRE(spec.ok());
  CHECK(SweepGridSize(*spec) == 840040000);
  auto expanded = ExpandSweep(*spec);  // the default limit, kDefaultMaxJobsPerSweep
  REQUIRE_FALSE(expanded.ok());
  CHECK(expanded.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(expanded.status().message() ==
        "sweep huge: its grid is 840040000 jobs (400 models x 21001 configurations x 100 tasks), "
        "over the limit of 100000 jobs per sweep");
}

TEST_CASE("A sweep whose grid is exactly the job limit is expanded and one over it is refused") {
  auto spec =
      ParseSweepYaml(std::string(kHeader) + "methods: [{method: rtn, wbits: [3, 4]}]\n", "t.yaml");
  REQUIRE(spec.ok());
  CHECK(SweepGridSize(*spec) == 3);  // baseline, rtn w3, rtn w4 on one model and one task
  ExpandOptions at_limit;
  at_limit.max_jobs = 3;
  auto ok = ExpandSweep(*spec, at_limit);
  REQUIRE(ok.ok());
  CHECK(ok->jobs.size() == 3);
  ExpandOptions below;
  below.max_jobs = 2;
  auto refused = ExpandSweep(*spec, below);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(std::string(refused.status().message()),
             Catch::Contains("grid is 3 jobs") && Catch::Contains("limit of 2 jobs per sweep"));
  ExpandOptions unlimited;
  unlimited.max_jobs = 0;
  CHECK(ExpandSweep(*spec, unlimited).ok());
}

TEST_CASE("A sweep list longer than the cap is refused naming the field and the cap") {
  std::string wbits = "[";
  for (size_t i = 0; i <= kMaxSweepListLength; ++i) wbits += i ? ",4" : "4";
  wbits += "]";
  CHECK(ParseError(std::string(kHeader) + "methods:\n  - {method: rtn, wbits: " + wbits + "}\n") ==
        "t.yaml:5:26: methods[0].wbits: a list of 1001 entries; at most 1000 are allowed");
  std::string models = "[";
  for (size_t i = 0; i <= kMaxSweepListLength; ++i) models += i ? ",/m" : "/m";
  models += "]";
  CHECK(ParseError("name: t\nmodels: " + models + "\ntasks: [c4]\n") ==
        "t.yaml:2:9: models: a list of 1001 entries; at most 1000 are allowed");
  std::string tasks = "[";
  for (size_t i = 0; i <= kMaxSweepListLength; ++i) tasks += i ? ",c4" : "c4";
  tasks += "]";
  CHECK_THAT(ParseError("name: t\nmodels: [/m]\ntasks: " + tasks + "\n"),
             Catch::EndsWith("tasks: a list of 1001 entries; at most 1000 are allowed"));
}

TEST_CASE("A sweep file over the size cap is refused naming its size and the cap") {
  std::string yaml = std::string(kHeader) + "# " + std::string(kMaxSweepYamlBytes, 'x') + "\n";
  CHECK(ParseError(yaml) == "t.yaml: the sweep file is " + std::to_string(yaml.size()) +
                                " bytes; at most 1048576 are allowed");
}

TEST_CASE("Relative paths of a sweep resolve against its file's folder, named ones stay") {
  const std::string dir = testing::ScratchDir("sweep_relative_paths");
  const std::string yaml =
      "name: rel\n"
      "models: [model, {path: ../elsewhere/m2}, /abs/m3]\n"
      "methods: [{method: gptq, wbits: [4], calibration: {source: calib/text.txt}},\n"
      "          {method: awq, wbits: [4]}]\n"
      "tasks: [wikitext2, tasks/facts.jsonl, /abs/other.jsonl]\n"
      "calibration: {source: c4}\n";
  {
    std::ofstream(dir + "/sweep.yaml") << yaml;
  }
  auto from_file = ParseSweepFile(dir + "/sweep.yaml");
  INFO(from_file.status().ToString());
  REQUIRE(from_file.ok());
  ParseOptions options;
  options.base_dir = dir;
  auto from_text = ParseSweepYaml(yaml, "sweep.yaml", options);
  REQUIRE(from_text.ok());
  for (const SweepSpec* s : {&*from_file, &*from_text}) {
    REQUIRE(s->models.size() == 3);
    CHECK(s->models[0].path == dir + "/model");
    CHECK(s->models[1].path == std::filesystem::path(dir).parent_path().string() + "/elsewhere/m2");
    CHECK(s->models[2].path == "/abs/m3");
    CHECK(s->tasks[0].task == "wikitext2");
    CHECK(s->tasks[1].task == dir + "/tasks/facts.jsonl");
    CHECK(s->tasks[2].task == "/abs/other.jsonl");
    CHECK(s->calibration.source == "c4");
    CHECK(s->methods[0].calibration.source == dir + "/calib/text.txt");
  }
  // Without a base folder the text keeps its paths as written.
  auto as_written = ParseSweepYaml(yaml, "sweep.yaml");
  REQUIRE(as_written.ok());
  CHECK(as_written->models[0].path == "model");
  CHECK(as_written->tasks[1].task == "tasks/facts.jsonl");
}

// Found by fuzz/sweep_yaml_fuzzer: a byte that is not UTF-8 in a path reached JobSpecToJson,
// whose nlohmann dump threw inside SubmitSweep and so terminated the coordinator: yaml-cpp passes
// such bytes through, plain or quoted.
TEST_CASE("A sweep string that is not UTF-8 is refused naming the field, never expanded") {
  for (const std::string& yaml :
       {std::string("name: s\nmodels: [../..\xCFmodels/demo]\ntasks: [c4]\n"),
        std::string("name: s\nmodels: [m]\ntasks: [\"facts\xCF.jsonl\"]\n"),
        std::string("name: \"s\xFF\"\nmodels: [m]\ntasks: [c4]\n")}) {
    auto spec = ParseSweepYaml(yaml, "t.yaml");
    INFO(yaml);
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(spec.status().message()),
               Catch::Contains("is not valid UTF-8") && Catch::Contains("t.yaml:"));
  }
}

TEST_CASE("The sweep file's dtype keys take the CLI's spellings and refuse others naming them") {
  auto parse = [](const std::string& calibration, const std::string& eval) {
    return ParseSweepYaml("name: t\nmodels: [/m]\ntasks: [c4]\ncalibration: {dtype: " +
                              calibration + "}\neval: {dtype: " + eval + "}\nmethods:\n" +
                              "  - {method: gptq, wbits: 4, calibration: {dtype: " + calibration +
                              "}}\n",
                          "t.yaml");
  };
  for (const auto& [spelling, canonical] :
       std::map<std::string, std::string>{{"fp32", "fp32"},
                                          {"FP32", "fp32"},
                                          {"f32", "fp32"},
                                          {"float32", "fp32"},
                                          {"bf16", "bf16"},
                                          {"BFloat16", "bf16"},
                                          {"bfloat16", "bf16"}}) {
    INFO(spelling);
    auto spec = parse(spelling, spelling);
    INFO(spec.status().ToString());
    REQUIRE(spec.ok());
    CHECK(spec->eval.dtype == canonical);
    CHECK(*spec->calibration.dtype == canonical);
    CHECK(*spec->methods[0].calibration.dtype == canonical);
  }
  // One spelling, one job: bfloat16 and bf16 sweeps expand to the same job keys.
  auto a = ExpandSweep(*parse("float32", "bfloat16"));
  auto b = ExpandSweep(*parse("fp32", "bf16"));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->jobs.size() == b->jobs.size());
  for (size_t i = 0; i < a->jobs.size(); ++i) CHECK(a->jobs[i].JobKey() == b->jobs[i].JobKey());

  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\neval: {dtype: fp64}\n") ==
        "t.yaml:4:15: eval.dtype: unknown dtype \"fp64\" (use fp32 or bf16; also accepted: f32, "
        "float32, bfloat16)");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\ncalibration: {dtype: half}\n") ==
        "t.yaml:4:22: calibration.dtype: fp16 is not accepted here (use fp32 or bf16)");
  CHECK(ParseError("name: t\nmodels: [/m]\ntasks: [c4]\n"
                   "methods: [{method: gptq, wbits: 4, calibration: {dtype: int8}}]\n") ==
        "t.yaml:4:57: methods[0].calibration.dtype: unknown dtype \"int8\" (use fp32 or bf16; "
        "also accepted: f32, float32, bfloat16)");
}

TEST_CASE("A model's name is parsed, refused when empty or taken, and enters no job key") {
  auto spec = ParseSweepYaml(
      "name: t\nmodels:\n  - {path: /models/a, name: Qwen3 base}\n  - /models/b\n"
      "  - {path: /models/c, name: c-tuned, tp: 1}\ntasks: [c4]\n",
      "t.yaml");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  CHECK(spec->models[0].name == "Qwen3 base");
  CHECK(spec->models[1].name.empty());
  CHECK(ModelNames(*spec) ==
        std::map<std::string, std::string>{{"/models/a", "Qwen3 base"}, {"/models/c", "c-tuned"}});
  auto plain = ParseSweepYaml("name: t\nmodels: [/models/a, /models/b, /models/c]\ntasks: [c4]\n",
                              "t.yaml");
  REQUIRE(plain.ok());
  auto named_jobs = ExpandSweep(*spec), plain_jobs = ExpandSweep(*plain);
  REQUIRE(named_jobs.ok());
  REQUIRE(plain_jobs.ok());
  REQUIRE(named_jobs->jobs.size() == plain_jobs->jobs.size());
  for (size_t i = 0; i < named_jobs->jobs.size(); ++i) {
    CHECK(JobSpecToJson(named_jobs->jobs[i]) == JobSpecToJson(plain_jobs->jobs[i]));
  }

  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, name: \"  \"}\ntasks: [c4]\n") ==
        "t.yaml:3:22: models[0].name: empty name");
  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, name: x}\n  - {path: /n, name: x}\n"
                   "tasks: [c4]\n") ==
        "t.yaml:4:22: models[1].name: \"x\" already names models[0]: each model's name must be "
        "unique");
  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, name: x}\n  - {path: /m/, name: y}\n"
                   "tasks: [c4]\n") == "t.yaml:4:23: models[1].name: /m is already named \"x\" "
                                        "(models[0])");
  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, name: [x]}\ntasks: [c4]\n") ==
        "t.yaml:3:22: models[0].name: expected a string");
  CHECK(ParseError("name: t\nmodels:\n  - {path: /m, name: " + std::string(201, 'n') +
                   "}\ntasks: [c4]\n") ==
        "t.yaml:3:22: models[0].name: a name of 201 bytes; at most 200 are allowed");
  CHECK_THAT(ParseError("name: t\nmodels:\n  - {path: /m, nmae: x}\ntasks: [c4]\n"),
             Catch::Contains("unknown key (allowed: path, name, devices, memory_gb, tp)"));
}

TEST_CASE("A sweep's run_tag is on every job, the FP baselines and their keys included") {
  const std::string methods = "methods: [{method: rtn, wbits: 4}, {method: gptq, wbits: 3}]\n";
  const ExpandedSweep plain = Expand(std::string(kHeader) + methods);
  const ExpandedSweep tagged = Expand(std::string(kHeader) + "run_tag: torch-2.6\n" + methods);
  REQUIRE(tagged.jobs.size() == plain.jobs.size());
  for (size_t i = 0; i < tagged.jobs.size(); ++i) {
    CHECK(tagged.jobs[i].run_tag == "torch-2.6");
    CHECK(plain.jobs[i].run_tag.empty());
    CHECK(tagged.jobs[i].JobKey() != plain.jobs[i].JobKey());
  }
  CHECK(tagged.jobs.front().quant.method == "fp");
  CHECK(ParseError(std::string(kHeader) + "run_tag: two words\n" + methods) ==
        "t.yaml:4:10: run_tag: may hold only letters, digits, '.', '_' and '-'");
  CHECK(ParseError(std::string(kHeader) + "run_tag: ''\n" + methods) ==
        "t.yaml:4:10: run_tag: empty");
}
