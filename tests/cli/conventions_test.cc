// The conventions every `bitsweep` verb follows, run on the real executable: exit codes and
// --help, --version, global options after the verb, dtype spellings, case-insensitive names with
// suggestions, and what a refused input says.
#include <torch/version.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/cli/run_bitsweep.h"
#include "tests/testing/paths.h"

namespace {

using bitsweep::testing::cli::Bitsweep;
using bitsweep::testing::cli::Run;
using bitsweep::testing::cli::Slurp;
using bitsweep::testing::cli::SmallDataDir;
using bitsweep::testing::cli::WriteFile;
using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("bitsweep --help lists the exit codes and every parse error exits 2", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_exit_codes");
  Run help = Bitsweep("--help", dir);
  CHECK(help.code == 0);
  CHECK_THAT(help.out, Contains("Exit codes: 0 success; 1 could not run"));
  CHECK_THAT(help.out, Contains("3 the sweep ran but some job failed or was canceled"));
  CHECK(Bitsweep("results --format xml", dir).code == 2);
  CHECK(Bitsweep("status --no-such-flag", dir).code == 2);
  CHECK(Bitsweep("", dir).code == 2);  // a subcommand is required
}

TEST_CASE(
    "bitsweep status -o with describe job and logs parse their arguments and refuse bad ones",
    "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_inspect_verbs");
  CHECK_THAT(Bitsweep("status --help", dir).out, Contains("-o,--output") && Contains("wide"));
  CHECK_THAT(Bitsweep("describe job --help", dir).out, Contains("job_id"));
  CHECK_THAT(Bitsweep("logs --help", dir).out, Contains("64 KiB"));
  CHECK(Bitsweep("status -o xml", dir).code == 2);
  CHECK(Bitsweep("describe", dir).code == 2);      // which object
  CHECK(Bitsweep("describe job", dir).code == 2);  // which job
  CHECK(Bitsweep("describe job 3 -o yaml", dir).code == 2);
  CHECK(Bitsweep("logs", dir).code == 2);
  // Parsed: the call itself fails, nothing listens on port 1.
  for (const char* args : {"status -o wide", "status 1 -o json", "describe job 3", "logs 3"}) {
    INFO(args);
    CHECK(Bitsweep(std::string(args) + " --coordinator 127.0.0.1:1", dir).code == 1);
  }
}

TEST_CASE("bitsweep results and local take --format latex and --percent and their help names both",
          "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_results_formats");
  for (const char* verb : {"results", "local"}) {
    Run help = Bitsweep(std::string(verb) + " --help", dir);
    CHECK(help.code == 0);
    CHECK_THAT(help.out, Contains("latex (a booktabs tabular)"));
    CHECK_THAT(help.out, Contains("--percent"));
  }
  // Parsed (not a usage error, 2): the call itself fails, nothing listens on port 1.
  Run latex = Bitsweep("results --format latex --percent --coordinator 127.0.0.1:1", dir);
  CHECK(latex.code == 1);
}

TEST_CASE("bitsweep --version prints the version and the build", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_version");
  Run v = Bitsweep("--version", dir);
  INFO(v.err);
  CHECK(v.code == 0);
  CHECK_THAT(v.out, Catch::StartsWith("bitsweep "));
  CHECK_THAT(v.out, Contains(std::string("libtorch ") + TORCH_VERSION));
  CHECK_THAT(v.out, Contains("\nCUDA o") && Contains("\nNCCL o"));
}

TEST_CASE("bitsweep takes global options after the verb as before it", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_global_after_verb");
  Run before = Bitsweep("--threads 1 catalog", dir);
  Run after = Bitsweep("catalog --threads 1", dir);
  INFO(after.err);
  CHECK(before.code == 0);
  CHECK(after.code == 0);
  CHECK(after.out == before.out);
  Run tiny = Bitsweep("make-tiny-model --out " + dir + "/model --threads 1", dir);
  INFO(tiny.err);
  CHECK(tiny.code == 0);
  // An option neither the verb nor the main command knows is still a usage error.
  CHECK(Bitsweep("catalog --no-such-flag", dir).code == 2);
}

TEST_CASE("Dtypes are spelled fp32, bf16 and fp16 everywhere, the old spellings accepted",
          "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_dtype_spelling");
  for (const char* dtype : {"fp16", "f16"}) {
    const std::string out = dir + "/" + dtype;
    Run r = Bitsweep("make-tiny-model --out " + out + " --dtype " + dtype, dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    CHECK(nlohmann::json::parse(Slurp(out + "/config.json"))["torch_dtype"] == "float16");
  }
  Run help = Bitsweep("make-tiny-model --help", dir);
  CHECK_THAT(help.out, Contains("fp32, bf16 or fp16"));
  Run half = Bitsweep("eval --model " + dir + "/fp16 --dtype fp16", dir);
  CHECK(half.code == 2);
  CHECK_THAT(half.err, Contains("fp16 is not accepted here (use auto, fp32 or bf16)"));
  Run unknown = Bitsweep("quantize --model " + dir + "/fp16 --out " + dir + "/q --dtype fp8", dir);
  CHECK(unknown.code == 2);
  CHECK_THAT(unknown.err, Contains("unknown dtype \"fp8\""));
}

TEST_CASE("Method and task names ignore case and typos get a suggestion", "[cli][quant]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_names_case");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 5", dir).code == 0);
  Run q = Bitsweep(
      "quantize --model " + dir + "/model --method RTN --wbits 4 --group 16 --out " + dir + "/q",
      dir);
  INFO(q.err);
  REQUIRE(q.code == 0);
  CHECK(nlohmann::json::parse(Slurp(dir + "/q/quantization_config.json"))["method"] == "rtn");
  Run typo = Bitsweep(
      "quantize --model " + dir + "/model --method gtpq --wbits 4 --out " + dir + "/x", dir);
  CHECK(typo.code == 2);
  CHECK_THAT(typo.err, Contains("did you mean \"gptq\"?"));
  const std::string data = SmallDataDir(dir);
  Run e = Bitsweep("eval --model " + dir + "/model --tasks WikiText2 --seqlen 32 --max-windows 1 " +
                       "--json --data-dir " + data,
                   dir);
  INFO(e.err);
  REQUIRE(e.code == 0);
  CHECK(nlohmann::json::parse(e.out)["task"] == "wikitext2");
  Run task_typo = Bitsweep("eval --model " + dir + "/model --tasks hellaswg", dir);
  CHECK(task_typo.code == 2);
  CHECK_THAT(task_typo.err, Contains("did you mean \"hellaswag\"?"));
}

TEST_CASE("quantize reports a bit width the method cannot take before any missing flag", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_billm_wbits");
  Run r = Bitsweep("quantize --method billm --wbits 4", dir);
  CHECK(r.code == 2);
  CHECK_THAT(r.err, Contains("billm binarizes weights: it takes 1 weight bit, got 4"));
  CHECK_THAT(r.err, !Contains("required"));
  Run gptq = Bitsweep("quantize --method gptq --wbits 1", dir);
  CHECK(gptq.code == 2);
  CHECK_THAT(gptq.err, Contains("gptq takes 2..8 weight bits, got 1"));
}

TEST_CASE("A folder that is not a model is refused saying what a model folder holds", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_not_a_model");
  WriteFile(dir + "/notes/readme.txt", "not a model");
  for (const std::string verb : {"eval", "quantize"}) {
    Run r = Bitsweep(verb + " --model " + dir + "/notes" +
                         (verb == "quantize" ? " --method rtn --out " + dir + "/q" : ""),
                     dir);
    INFO(verb << ": " << r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Contains("is not a Hugging Face model folder: it has no config.json, no "
                               "weights (*.safetensors), no tokenizer.json"));
    CHECK_THAT(r.err, Contains("a model folder holds config.json, the weights as *.safetensors"));
  }
}
