#include "common/job_spec.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using namespace bitsweep;

namespace {

JobSpec Gptq4(const std::string& task = "wikitext2") {
  JobSpec s;
  s.model = "/models/Qwen3-8B";
  s.quant.method = "gptq";
  s.quant.wbits = 4;
  s.quant.group_size = 128;
  s.eval.task = task;
  return s;
}

JobSpec Normalized(const JobSpec& s) {
  auto n = NormalizeJobSpec(s);
  INFO(n.status().ToString());
  REQUIRE(n.ok());
  return *n;
}

std::string ErrorOf(const JobSpec& s) {
  auto n = NormalizeJobSpec(s);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(n.status().message());
}

}  // namespace

TEST_CASE("Normalising a job fills the method's calibration defaults and every option default") {
  const JobSpec n = Normalized(Gptq4());
  REQUIRE(n.calibration.has_value());
  CHECK(n.calibration->source == "c4");
  CHECK(n.calibration->nsamples == 128);
  CHECK(n.calibration->seqlen == 2048);
  CHECK(n.calibration->seed == 0);
  CHECK(n.quant.options.size() == 5);
  CHECK(n.quant.options.at("act_order") == "false");
  CHECK(n.quant.options.at("true_sequential") == "true");
  CHECK(n.quant.options.at("percdamp") == "0.01");
  CHECK(n.eval.num_fewshot == 0);
  CHECK(n.eval.seqlen == 2048);

  JobSpec awq = Gptq4("mmlu");
  awq.quant.method = "awq";
  const JobSpec a = Normalized(awq);
  CHECK(a.calibration->seqlen == 512);
  CHECK(a.calibration->seed == 42);
  CHECK(a.eval.num_fewshot == 5);
  CHECK(a.eval.seqlen == 0);  // not a perplexity task
}

TEST_CASE("Writing the defaults out, in any order and spelling, gives the same keys") {
  JobSpec explicit_spec = Gptq4();
  explicit_spec.model = "/models//Qwen3-8B/";
  explicit_spec.quant.options = {
      {"true_sequential", "yes"}, {"percdamp", "1e-2"}, {"blocksize", "128"}, {"act_order", "0"}};
  CalibrationConfig c;
  c.nsamples = 128;
  c.seed = 0;
  explicit_spec.calibration = c;
  explicit_spec.eval.num_fewshot = 0;
  explicit_spec.priority = 7;  // scheduling, not content
  explicit_spec.resources.devices = 4;
  const JobSpec a = Normalized(Gptq4());
  const JobSpec b = Normalized(explicit_spec);
  CHECK(a.ArtifactKey() == b.ArtifactKey());
  CHECK(a.JobKey() == b.JobKey());
  CHECK(Sha256Hex(a.JobKey()) == Sha256Hex(b.JobKey()));
}

TEST_CASE("Jobs needing the same quantized model share the artifact key, not the job key") {
  const JobSpec wiki = Normalized(Gptq4("wikitext2"));
  const JobSpec piqa = Normalized(Gptq4("piqa"));
  CHECK(wiki.ArtifactKey() == piqa.ArtifactKey());
  CHECK(wiki.JobKey() != piqa.JobKey());
  CHECK(wiki.JobKey() == wiki.ArtifactKey() + "|" + EvalKey(wiki.eval));

  JobSpec act = Gptq4();
  act.quant.options["act_order"] = "true";
  CHECK(Normalized(act).ArtifactKey() != wiki.ArtifactKey());
  JobSpec seed = Gptq4();
  seed.calibration = CalibrationConfig{};
  seed.calibration->seed = 1;
  CHECK(Normalized(seed).ArtifactKey() != wiki.ArtifactKey());
  JobSpec w3 = Gptq4();
  w3.quant.wbits = 3;
  CHECK(Normalized(w3).ArtifactKey() != wiki.ArtifactKey());
}

TEST_CASE("The FP baseline's key has no calibration, so every sweep shares it") {
  JobSpec fp;
  fp.model = "/models/Qwen3-8B";
  fp.eval.task = "c4";
  JobSpec other = fp;
  other.calibration = CalibrationConfig{};  // as a sweep with a calibration section would set
  other.calibration->nsamples = 7;
  other.priority = 3;
  const JobSpec a = Normalized(fp);
  const JobSpec b = Normalized(other);
  CHECK_FALSE(b.calibration.has_value());
  CHECK(a.ArtifactKey() == b.ArtifactKey());
  CHECK(a.JobKey() == b.JobKey());
  CHECK(a.ArtifactKey().find("calib") == std::string::npos);
  CHECK(a.quant.wbits == 16);
}

TEST_CASE("Released-code SmoothQuant needs no calibration and released-code RTN has no groups") {
  JobSpec sq = Gptq4();
  sq.quant.method = "smoothquant";
  sq.quant.group_size = -1;
  const JobSpec smoothed = Normalized(sq);
  CHECK(smoothed.quant.abits == 8);  // the CLI's default
  CHECK(smoothed.calibration.has_value());
  sq.quant.options["released_code"] = "true";
  CHECK_FALSE(Normalized(sq).calibration.has_value());

  JobSpec rtn = Gptq4();
  rtn.quant.method = "rtn";
  rtn.quant.options["released_code"] = "true";
  JobSpec rtn_channel = rtn;
  rtn_channel.quant.group_size = -1;
  CHECK(Normalized(rtn).ArtifactKey() == Normalized(rtn_channel).ArtifactKey());
  CHECK_FALSE(Normalized(rtn).calibration.has_value());
}

TEST_CASE("Invalid job specs are refused naming the field") {
  JobSpec s = Gptq4();
  s.quant.wbits = 1;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.wbits: gptq takes 2..8"));
  s = Gptq4();
  s.quant.abits = 8;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.abits"));
  s = Gptq4();
  s.quant.options["alpha"] = "0.5";
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.options.alpha: option \"alpha\" applies to "
                                           "smoothquant"));
  s = Gptq4();
  s.quant.options["static_groups"] = "true";
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.options.static_groups"));
  s = Gptq4();
  s.quant.method = "billm";
  s.quant.wbits = 4;
  s.quant.group_size = -1;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.wbits: billm takes 1 weight bits, got 4"));
  s = Gptq4();
  s.quant.group_size = 0;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("quant.group_size"));
  s = Gptq4("wikitext2");
  s.eval.num_fewshot = 5;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("eval.num_fewshot"));
  s = Gptq4("hellaswag2");
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("eval.task: unknown task"));
  s = Gptq4();
  s.calibration = CalibrationConfig{};
  s.calibration->dtype = "fp16";
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("calibration.dtype"));
  s = Gptq4();
  s.resources.tp = 2;
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("resources.tp"));
  s = Gptq4();
  s.model = "";
  CHECK_THAT(ErrorOf(s), Catch::StartsWith("model"));
}

TEST_CASE("A job spec survives the JSON round trip with its keys") {
  JobSpec s = Gptq4("models/demo/heldout/c4/heldout.jsonl");
  s.quant.options["act_order"] = "true";
  s.eval.limit = 32;
  s.eval.dtype = "bf16";
  s.priority = -2;
  s.max_attempts = 5;
  s.resources = {2, 37.5, 2};
  const JobSpec a = Normalized(s);
  auto b = JobSpecFromJson(JobSpecToJson(a));
  REQUIRE(b.ok());
  CHECK(JobSpecToJson(*b) == JobSpecToJson(a));
  CHECK(b->JobKey() == a.JobKey());
  CHECK(b->priority == -2);
  CHECK(b->max_attempts == 5);
  CHECK(b->resources.memory_gb == 37.5);
  CHECK(b->resources.tp == 2);

  JobSpec fp;
  fp.model = "m";
  fp.eval.task = "boolq";
  const JobSpec f = Normalized(fp);
  auto g = JobSpecFromJson(JobSpecToJson(f));
  REQUIRE(g.ok());
  CHECK_FALSE(g->calibration.has_value());
  CHECK(g->JobKey() == f.JobKey());
}

TEST_CASE("JSON job specs with unknown fields or wrong types are refused naming the field") {
  auto unknown = JobSpecFromJson(R"({"model":"m","eval":{"task":"c4","shots":3}})");
  REQUIRE_FALSE(unknown.ok());
  CHECK(std::string(unknown.status().message()) == "eval.shots: unknown field");
  auto type = JobSpecFromJson(R"({"model":"m","quant":{"method":"rtn","wbits":"4"}})");
  REQUIRE_FALSE(type.ok());
  CHECK(std::string(type.status().message()) == "quant.wbits: expected an integer");
  auto range = JobSpecFromJson(R"({"model":"m","quant":{"wbits":99999999999}})");
  REQUIRE_FALSE(range.ok());
  CHECK_THAT(std::string(range.status().message()), Catch::StartsWith("quant.wbits: integer"));
  auto syntax = JobSpecFromJson(R"({"model":)");
  REQUIRE_FALSE(syntax.ok());
  CHECK_THAT(std::string(syntax.status().message()), Catch::StartsWith("job spec JSON"));
  auto options =
      JobSpecFromJson(R"({"model":"m","quant":{"method":"awq","wbits":4,"group_size":128,)"
                      R"("options":{"awq_n_grid":10,"awq_no_clip":true}},"eval":{"task":"c4"}})");
  REQUIRE(options.ok());
  CHECK(options->quant.options.at("awq_n_grid") == "10");
  CHECK(options->quant.options.at("awq_no_clip") == "true");
}

TEST_CASE("Sha256Hex gives the FIPS 180-2 digest of abc") {
  CHECK(Sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("Key fields are escaped so that a path cannot forge another field") {
  JobSpec a;
  a.model = "m;method=gptq";
  a.eval.task = "c4";
  JobSpec b;
  b.model = "m";
  b.eval.task = "c4";
  CHECK(Normalized(a).ArtifactKey() != Normalized(b).ArtifactKey());
  CHECK(Normalized(a).ArtifactKey().find(";method=gptq") == std::string::npos);
}

// A spec that is not UTF-8 cannot be written as JSON (nlohmann's dump throws): normalising it
// fails instead, naming the field (fuzz/sweep_yaml_fuzzer found such a model path).
TEST_CASE("Normalising a job spec whose text is not UTF-8 is INVALID_ARGUMENT naming the field") {
  JobSpec spec;
  spec.model = "models/\xCF" "demo";
  spec.eval.task = "c4";
  auto bad_model = NormalizeJobSpec(spec);
  REQUIRE_FALSE(bad_model.ok());
  CHECK(bad_model.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad_model.status().message()),
             Catch::Contains("model") && Catch::Contains("not valid UTF-8 (byte 7)"));
  spec.model = "models/demo";
  spec.eval.task = "facts\xE0\x80.jsonl";  // overlong lead, truncated
  auto bad_task = NormalizeJobSpec(spec);
  REQUIRE_FALSE(bad_task.ok());
  CHECK_THAT(std::string(bad_task.status().message()), Catch::Contains("eval.task"));
  spec.eval.task = "caf\xC3\xA9.jsonl";
  CHECK(NormalizeJobSpec(spec).ok());
}

TEST_CASE("A run tag makes new keys for every job and leaves untagged keys as they were") {
  const JobSpec plain = Normalized(Gptq4());
  // The untagged key, field for field, as it was before run tags existed: stored keys still match.
  CHECK(plain.ArtifactKey().rfind("artifact/v1;model=/models/Qwen3-8B;method=gptq;wbits=4;", 0) ==
        0);
  CHECK(plain.ArtifactKey().find("run_tag") == std::string::npos);
  CHECK(JobSpecToJson(plain).find("run_tag") == std::string::npos);

  JobSpec tagged_spec = Gptq4();
  tagged_spec.run_tag = "torch-2.6";
  const JobSpec tagged = Normalized(tagged_spec);
  CHECK(tagged.ArtifactKey() != plain.ArtifactKey());
  CHECK(tagged.ArtifactKey().find(";run_tag=torch-2.6") != std::string::npos);
  CHECK(tagged.JobKey() != plain.JobKey());
  JobSpec other = tagged_spec;
  other.run_tag = "torch-2.7";
  CHECK(Normalized(other).ArtifactKey() != tagged.ArtifactKey());

  // The FP baseline is run again too: a new code version may change the unquantized numbers.
  JobSpec fp;
  fp.model = "/models/Qwen3-8B";
  fp.eval.task = "wikitext2";
  const std::string fp_key = Normalized(fp).JobKey();
  fp.run_tag = "torch-2.6";
  CHECK(Normalized(fp).JobKey() != fp_key);

  auto back = JobSpecFromJson(JobSpecToJson(tagged));
  REQUIRE(back.ok());
  CHECK(back->run_tag == "torch-2.6");
  CHECK(back->JobKey() == tagged.JobKey());
}

TEST_CASE("A run tag outside 1 to 64 of letters, digits, dot, underscore and dash is refused") {
  CHECK(IsValidRunTag("v2.1_rc-3"));
  for (const std::string& bad :
       std::vector<std::string>{"two words", "a;b", "a=b", "tag/x", std::string(65, 'a')}) {
    JobSpec s = Gptq4();
    s.run_tag = bad;
    INFO(bad);
    CHECK_FALSE(IsValidRunTag(bad));
    CHECK(ErrorOf(s).rfind("run_tag: ", 0) == 0);
  }
  auto json = JobSpecFromJson(R"({"model": "m", "run_tag": 3, "eval": {"task": "c4"}})");
  REQUIRE_FALSE(json.ok());
  CHECK(json.status().message() == "run_tag: expected a string");
}
