// Runs the real `bitsweep` executable as a user would: eval, quantize, tokenize, tensor
// parallelism and memory (the conventions every verb follows: conventions_test.cc).
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "tests/cli/run_bitsweep.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::cli::Bitsweep;
using bitsweep::testing::cli::Run;
using bitsweep::testing::cli::Slurp;
using bitsweep::testing::cli::SmallDataDir;
using bitsweep::testing::cli::WriteFile;
using Catch::Matchers::Contains;

}  // namespace

TEST_CASE("bitsweep eval --json prints one object per task with the documented fields", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_eval_json");
  Run make =
      Bitsweep("make-tiny-model --out " + dir + "/model --seed 3 --max-shard-bytes 30000", dir);
  INFO(make.err);
  REQUIRE(make.code == 0);
  CHECK(fs::exists(dir + "/model/model.safetensors.index.json"));
  const std::string data = SmallDataDir(dir);
  Run r = Bitsweep("eval --model " + dir +
                       "/model --tasks wikitext2,c4 --seqlen 64 "
                       "--max-windows 3 --json --data-dir " +
                       data,
                   dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  std::istringstream lines(r.out);
  std::string line;
  std::vector<nlohmann::json> objs;
  while (std::getline(lines, line)) objs.push_back(nlohmann::json::parse(line));
  REQUIRE(objs.size() == 2);
  CHECK(objs[0]["task"] == "wikitext2");
  CHECK(objs[1]["task"] == "c4");
  CHECK(objs[1]["protocol"] == "gptq-random-segments");
  for (const auto& j : objs) {
    CHECK(j["windows"] == 3);
    CHECK(j["tokens"] == 192);
    CHECK(j["ppl"].get<double>() > 1.0);
    CHECK(j["nll"].get<double>() == Approx(std::log(j["ppl"].get<double>())));
    CHECK(j["dtype"] == "fp32");  // --dtype auto on the CPU
  }
}

TEST_CASE("bitsweep eval names the problem for bad models, tasks and data", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_eval_errors");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model", dir).code == 0);
  const std::string data = SmallDataDir(dir);
  Run bad_task =
      Bitsweep("eval --model " + dir + "/model --tasks wikitext3 --data-dir " + data, dir);
  CHECK(bad_task.code != 0);
  CHECK_THAT(bad_task.err, Contains("unknown task \"wikitext3\""));
  Run no_model = Bitsweep("eval --model " + dir + "/nowhere --data-dir " + data, dir);
  CHECK(no_model.code != 0);
  CHECK_THAT(no_model.err, Contains(dir + "/nowhere"));
  WriteFile(dir + "/model/config.json", "{\"model_type\": \"qwen3\"}");
  Run bad_cfg = Bitsweep("eval --model " + dir + "/model --data-dir " + data, dir);
  CHECK(bad_cfg.code != 0);
  CHECK_THAT(bad_cfg.err, Contains("config.json") && Contains("vocab_size"));
}

// This machine has no visible GPU, so every CUDA spelling is refused, whatever the build.
TEST_CASE("bitsweep eval and quantize refuse devices that are not available, naming those that are",
          "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_bad_device");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model", dir).code == 0);
  const std::string data = SmallDataDir(dir);
  const std::string eval =
      "eval --model " + dir + "/model --tasks wikitext2 --max-windows 1 --data-dir " + data;
  Run unknown = Bitsweep(eval + " --device tpu", dir);
  CHECK(unknown.code == 2);
  CHECK_THAT(unknown.err, Contains("\"tpu\" is not cpu, cuda, cuda:N or auto") &&
                              Contains("available: cpu"));
  for (const std::string device : {"cuda", "cuda:3"}) {
    Run cuda = Bitsweep(eval + " --device " + device, dir);
    CHECK(cuda.code == 2);
    CHECK_THAT(cuda.err, Contains("\"" + device + "\"") && Contains("available: cpu"));
  }
  // Under tensor parallelism the launcher refuses before any rank starts.
  Run tp = Bitsweep(eval + " --device cuda --tp 2", dir);
  CHECK(tp.code == 2);
  CHECK_THAT(tp.err, Contains("available: cpu"));
  Run quantize = Bitsweep("quantize --model " + dir + "/model --out " + dir +
                              "/q --method rtn --wbits 4 --device cuda:1 --data-dir " + data,
                          dir);
  CHECK(quantize.code == 2);
  CHECK_THAT(quantize.err, Contains("\"cuda:1\"") && Contains("available: cpu"));
  CHECK_FALSE(fs::exists(dir + "/q"));
  // auto is the CPU here, and gives the CPU's result.
  Run automatic = Bitsweep(eval + " --device auto --json", dir);
  REQUIRE(automatic.code == 0);
  CHECK(nlohmann::json::parse(automatic.out)["device"] == "cpu");
}

TEST_CASE("bitsweep tokenize encodes standard input and --decode inverts it", "[cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_tokenize");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model", dir).code == 0);
  const std::string text = "Hello, wörld!\n  two  spaces";
  Run enc = Bitsweep("tokenize --tokenizer " + dir + "/model", dir, text);
  REQUIRE(enc.code == 0);
  auto ids = nlohmann::json::parse(enc.out);
  REQUIRE(ids.is_array());
  CHECK(ids.size() == text.size());  // the built-in byte-level tokenizer has no merges
  Run dec = Bitsweep("tokenize --decode --tokenizer " + dir + "/model", dir, enc.out);
  REQUIRE(dec.code == 0);
  CHECK(dec.out == text);
  Run bad = Bitsweep("tokenize --decode --tokenizer " + dir + "/model", dir, "[1, \"x\"]");
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Contains("JSON array of token ids"));
}

// Peak RSS of an evaluation minus that of a trivially small model, against the checkpoint's
// size in the compute dtype: weights are used from the mapping or converted once.
TEST_CASE("Evaluating a checkpoint peaks within 1.3x its fp32 size plus activations",
          "[cli][memory]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_memory");
  const std::string data = SmallDataDir(dir);
  REQUIRE(
      Bitsweep("make-tiny-model --out " + dir + "/small --hidden-size 32 --layers 1", dir).code ==
      0);
  Run base = Bitsweep("eval --model " + dir +
                          "/small --tasks wikitext2 --seqlen 64 "
                          "--max-windows 1 --data-dir " +
                          data,
                      dir);
  REQUIRE(base.code == 0);
  for (const char* dtype : {"f32", "bf16"}) {
    // About 150 MB of fp32 weights.
    Run make = Bitsweep(std::string("make-tiny-model --out ") + dir + "/big --dtype " + dtype +
                            " --hidden-size 512 --intermediate-size 2048 --layers 8 --heads 8"
                            " --kv-heads 4 --head-dim 64 --vocab-size 32000 --untied",
                        dir);
    REQUIRE(make.code == 0);
    Run r = Bitsweep("eval --model " + dir +
                         "/big --tasks wikitext2 --seqlen 64 --max-windows 1 "
                         "--data-dir " +
                         data,
                     dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    const double fp32_mb =
        (2.0 * 32000 * 512 + 8.0 * (512 * 512 * 2 + 512 * 256 * 2 + 3.0 * 512 * 2048)) * 4 / 1e6;
    const double extra_mb = (r.max_rss_kb - base.max_rss_kb) / 1024.0;
    const double activations_mb = 16;  // logits 64x32000 fp32 and small buffers
    INFO(dtype << ": checkpoint " << fp32_mb << " MB fp32, peak RSS above baseline " << extra_mb
               << " MB");
    CHECK(extra_mb < 1.3 * fp32_mb + activations_mb);
  }
}

TEST_CASE("bitsweep quantize writes a loadable folder with its recipe and rejects bad parameters",
          "[cli][quant]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_quantize");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 4", dir).code == 0);
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The cat number " + std::to_string(i) + " sat on the mat.\n";
  WriteFile(dir + "/calib.txt", text);
  Run q = Bitsweep("quantize --model " + dir +
                       "/model --method gptq --wbits 3 --group 16 "
                       "--calib " +
                       dir + "/calib.txt --nsamples 4 --seqlen 32 --act-order --out " + dir + "/q",
                   dir);
  INFO(q.err);
  REQUIRE(q.code == 0);
  auto recipe = nlohmann::json::parse(Slurp(dir + "/q/quantization_config.json"));
  CHECK(recipe["method"] == "gptq");
  CHECK(recipe["wbits"] == 3);
  CHECK(recipe["group_size"] == 16);
  CHECK(recipe["gptq"]["act_order"] == true);
  CHECK(recipe["calibration"]["nsamples"] == 4);
  CHECK(recipe["linears"].size() == 2 * 7);
  const std::string data = SmallDataDir(dir);
  Run e = Bitsweep("eval --model " + dir +
                       "/q --tasks wikitext2 --seqlen 64 --max-windows 2 "
                       "--json --data-dir " +
                       data,
                   dir);
  INFO(e.err);
  CHECK(e.code == 0);
  // 3-bit packed form next to it: evaluates to the same perplexity up to fp16 scales.
  REQUIRE(fs::exists(dir + "/q/packed/config.json"));
  Run ep = Bitsweep("eval --model " + dir +
                        "/q/packed --tasks wikitext2 --seqlen 64 "
                        "--max-windows 2 --json --data-dir " +
                        data,
                    dir);
  INFO(ep.err);
  REQUIRE(ep.code == 0);
  const auto jd = nlohmann::json::parse(e.out), jp = nlohmann::json::parse(ep.out);
  CHECK_THAT(jp["quantization"].get<std::string>(), Contains("packed gptq 3-bit"));
  CHECK(std::abs(jp["ppl"].get<double>() / jd["ppl"].get<double>() - 1) < 1e-3);

  Run bad_option = Bitsweep(
      "quantize --model " + dir + "/model --method gptq --abits 4 --out " + dir + "/x", dir);
  CHECK(bad_option.code != 0);
  CHECK_THAT(bad_option.err, Contains("--abits"));

  Run bad_group = Bitsweep(
      "quantize --model " + dir + "/model --method rtn --group 48 --out " + dir + "/x", dir);
  CHECK(bad_group.code != 0);
  CHECK_THAT(bad_group.err, Contains("group_size = 48"));
  CHECK_FALSE(fs::exists(dir + "/x"));
  Run bad_method =
      Bitsweep("quantize --model " + dir + "/model --method hqq --out " + dir + "/x", dir);
  CHECK(bad_method.code != 0);
  CHECK_THAT(bad_method.err, Contains("--method"));
}

namespace {

// A data folder with small PIQA, BoolQ and MMLU files in their published layouts.
std::string AccuracyDataDir(const std::string& dir) {
  std::string piqa, labels;
  for (int i = 0; i < 6; ++i) {
    piqa += nlohmann::json({{"goal", "How do I open jar " + std::to_string(i) + "?"},
                            {"sol1", "Twist the lid."},
                            {"sol2", "Hit it with a fish number " + std::to_string(i) + "."}})
                .dump() +
            "\n";
    labels += std::to_string(i % 2) + "\n";
  }
  WriteFile(dir + "/data/piqa/valid.jsonl", piqa);
  WriteFile(dir + "/data/piqa/valid-labels.lst", labels);
  std::string boolq;
  for (int i = 0; i < 5; ++i) {
    boolq += nlohmann::json({{"question", "is the sky blue " + std::to_string(i)},
                             {"passage", "Sky -- The sky is blue on a clear day."},
                             {"idx", i},
                             {"label", i % 2 ? "true" : "false"}})
                 .dump() +
             "\n";
  }
  WriteFile(dir + "/data/boolq/val.jsonl", boolq);
  for (const std::string subject : {"astronomy", "marketing"}) {
    std::string dev, test;
    for (int i = 0; i < 5; ++i) dev += "Dev question " + std::to_string(i) + "?,a,b,c,d,B\n";
    for (int i = 0; i < 3; ++i) {
      test += "\"Test question " + std::to_string(i) + ", about " + subject + "?\",w,x,y,z," +
              std::string(1, static_cast<char>('A' + i)) + "\n";
    }
    WriteFile(dir + "/data/mmlu/dev/" + subject + "_dev.csv", dev);
    WriteFile(dir + "/data/mmlu/test/" + subject + "_test.csv", test);
  }
  return dir + "/data";
}

std::vector<nlohmann::json> JsonLines(const std::string& out) {
  std::istringstream lines(out);
  std::string line;
  std::vector<nlohmann::json> objs;
  while (std::getline(lines, line)) objs.push_back(nlohmann::json::parse(line));
  return objs;
}

}  // namespace

TEST_CASE("bitsweep eval scores accuracy tasks on original, packed and SmoothQuant models",
          "[cli][quant]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_eval_accuracy");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 6", dir).code == 0);
  const std::string data = AccuracyDataDir(dir);
  WriteFile(
      dir + "/mine.jsonl",
      "{\"context\": \"Two plus two is\", \"choices\": [\"four\", \"five\"], \"gold\": 0}\n"
      "{\"context\": \"The sky is\", \"choices\": [\"blue\", \"loud\", \"seven\"], \"gold\": 0}\n");
  const std::string tasks =
      " --tasks piqa,boolq,mmlu," + dir + "/mine.jsonl --limit 4 --json " + "--data-dir " + data;
  Run r = Bitsweep("eval --model " + dir + "/model" + tasks, dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  auto objs = JsonLines(r.out);
  REQUIRE(objs.size() == 4);
  CHECK(objs[0]["task"] == "piqa");
  CHECK(objs[0]["n"] == 4);
  CHECK(objs[0]["available"] == 6);
  CHECK(objs[0]["limited"] == true);
  CHECK(objs[0]["limit"] == 4);
  CHECK(objs[0].contains("acc_norm"));
  CHECK(objs[0]["stderr"].contains("acc_norm"));
  CHECK(objs[1]["task"] == "boolq");
  CHECK_FALSE(objs[1].contains("acc_norm"));  // lm-eval reports acc only for BoolQ
  CHECK(objs[1]["stderr"]["acc"].get<double>() >= 0);
  CHECK(objs[2]["task"] == "mmlu");
  CHECK(objs[2]["n"] == 6);  // 3 questions in each of 2 subjects (under the limit)
  CHECK(objs[2]["limited"] == false);
  CHECK(objs[2]["subjects"]["astronomy"]["n"] == 3);
  CHECK(objs[2]["categories"]["STEM"]["n"] == 3);
  CHECK(objs[2]["categories"]["other (business, health, misc.)"]["n"] == 3);
  CHECK(objs[3]["task"] == "mine");
  CHECK(objs[3]["n"] == 2);
  for (const auto& j : objs) {
    CHECK(j["acc"].get<double>() >= 0);
    CHECK(j["acc"].get<double>() <= 1);
  }

  // Same scores without prefix reuse.
  Run plain = Bitsweep("eval --model " + dir + "/model --no-prefix-reuse" + tasks, dir);
  REQUIRE(plain.code == 0);
  auto plain_objs = JsonLines(plain.out);
  REQUIRE(plain_objs.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(plain_objs[i]["acc"] == objs[i]["acc"]);
    CHECK(plain_objs[i]["engine"]["tokens"].get<int64_t>() >=
          objs[i]["engine"]["tokens"].get<int64_t>());
  }

  // Quantized forms: the packed RTN folder and SmoothQuant's activation quantisation.
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The cat number " + std::to_string(i) + " sat on the mat.\n";
  WriteFile(dir + "/calib.txt", text);
  REQUIRE(Bitsweep("quantize --model " + dir + "/model --method rtn --wbits 4 --group 16 --out " +
                       dir + "/rtn",
                   dir)
              .code == 0);
  Run sq_make = Bitsweep("quantize --model " + dir +
                             "/model --method smoothquant --wbits 8 "
                             "--abits 8 --calib " +
                             dir +
                             "/calib.txt --nsamples 4 --seqlen 32 "
                             "--out " +
                             dir + "/sq",
                         dir);
  INFO(sq_make.err);
  REQUIRE(sq_make.code == 0);
  for (const std::string q : {"/rtn/packed", "/sq"}) {
    Run e = Bitsweep("eval --model " + dir + q + tasks, dir);
    INFO(q << ": " << e.err);
    REQUIRE(e.code == 0);
    auto qo = JsonLines(e.out);
    REQUIRE(qo.size() == 4);
    CHECK_FALSE(qo[0]["quantization"].get<std::string>().empty());
    CHECK(qo[2]["n"] == 6);
  }

  WriteFile(dir + "/bad.jsonl",
            "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"
            "{\"context\": \"c\", \"choices\": \"ab\", \"gold\": 0}\n");
  Run bad = Bitsweep("eval --model " + dir + "/model --tasks " + dir + "/bad.jsonl", dir);
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Contains("bad.jsonl:2") && Contains("\"choices\""));
  Run bad_task =
      Bitsweep("eval --model " + dir + "/model --tasks piqa,mmlu5 --data-dir " + data, dir);
  CHECK(bad_task.code != 0);
  CHECK_THAT(bad_task.err, Contains("unknown task \"mmlu5\""));
}

namespace {

// The pids whose parent is `parent` (from /proc/*/stat).
std::vector<pid_t> Children(pid_t parent) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::istringstream stat(Slurp(e.path().string() + "/stat"));
    std::string pid, comm, state;
    long ppid = 0;
    stat >> pid >> comm >> state >> ppid;
    if (ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace

TEST_CASE("bitsweep eval --tp 2 runs two ranks and prints the perplexity of --tp 1", "[cli][tp]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_eval_tp");
  const std::string demo = bitsweep::testing::SourceDir() + "/models/demo";
  const std::string args = "eval --model " + demo +
                           " --tasks wikitext2 --seqlen 128 "
                           "--max-windows 6 --batch-size 2 --json --data-dir " +
                           demo + "/heldout";
  Run one = Bitsweep(args, dir);
  INFO(one.err);
  REQUIRE(one.code == 0);
  Run two = Bitsweep(args + " --tp 2", dir);
  INFO(two.err);
  REQUIRE(two.code == 0);
  const auto a = JsonLines(one.out), b = JsonLines(two.out);
  REQUIRE(a.size() == 1);
  REQUIRE(b.size() == 1);  // only rank 0 prints
  CHECK(b[0]["tensor_parallel"] == 2);
  const double p1 = a[0]["ppl"].get<double>(), p2 = b[0]["ppl"].get<double>();
  CHECK(std::abs(p2 - p1) / p1 < 5e-7);

  Run bad = Bitsweep(
      "eval --model " + demo + " --tasks wikitext2 --tp 3 --data-dir " + demo + "/heldout", dir);
  CHECK(bad.code != 0);
  CHECK_THAT(bad.err, Contains("does not divide num_attention_heads = 4"));
}

TEST_CASE("bitsweep quantize --tp 2 writes the same weights as --tp 1", "[cli][tp]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_quantize_tp");
  const std::string demo = bitsweep::testing::SourceDir() + "/models/demo";
  std::string calib;
  for (int i = 0; i < 300; ++i) calib += "the model reads line " + std::to_string(i) + " of text\n";
  WriteFile(dir + "/calib.txt", calib);
  auto ppl = [&](const std::string& model) {
    Run r = Bitsweep("eval --model " + model +
                         " --tasks wikitext2 --seqlen 128 --max-windows 4 "
                         "--json --data-dir " +
                         demo + "/heldout",
                     dir);
    REQUIRE(r.code == 0);
    return JsonLines(r.out).at(0)["ppl"].get<double>();
  };
  for (const std::string method : {"rtn", "awq", "gptq"}) {
    INFO(method);
    const std::string calibration =
        method == "rtn" ? "" : " --calib " + dir + "/calib.txt --nsamples 4 --seqlen 64";
    const std::string args = "quantize --model " + demo + " --method " + method +
                             " --wbits 3 --group 64" + calibration + " --out " + dir + "/";
    Run one = Bitsweep(args + method + "-tp1", dir);
    INFO(one.err);
    REQUIRE(one.code == 0);
    Run two = Bitsweep(args + method + "-tp2 --tp 2", dir);
    INFO(two.err);
    REQUIRE(two.code == 0);
    const auto recipe =
        nlohmann::json::parse(Slurp(dir + "/" + method + "-tp2/quantization_config.json"));
    CHECK(recipe["tensor_parallel"] == 2);
    if (method == "gptq") {
      // GPTQ on 256 calibration tokens (a rank-deficient, damped Hessian) amplifies the last-bit
      // differences of the all-reduce's sum order into different rounding decisions from layer
      // 0's MLP on (measured: 0.2% of layer 0's gate codes, more in later layers). The
      // code-for-code check is on random models in tests/tp; here both must be equally good.
      CHECK(std::abs(ppl(dir + "/gptq-tp2") / ppl(dir + "/gptq-tp1") - 1) < 0.02);
      continue;
    }
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir + "/" + method + "-tp1")) {
      if (e.path().extension() != ".safetensors") continue;
      ++files;
      const std::string other = dir + "/" + method + "-tp2/" + e.path().filename().string();
      INFO(e.path().filename());
      CHECK((Slurp(e.path().string()) == Slurp(other)));
    }
    CHECK(files > 0);
  }
}

TEST_CASE("A rank killed mid-job fails the whole job naming the rank and leaves no process",
          "[cli][tp]") {
  const std::string dir = bitsweep::testing::ScratchDir("cli_tp_kill");
  const std::string demo = bitsweep::testing::SourceDir() + "/models/demo";
  const std::string log = dir + "/launcher.log";
  fs::remove(log);
  const pid_t launcher = bitsweep::testing::Spawn(
      {bitsweep::testing::BinaryDir() + "/cli/bitsweep", "eval", "--model", demo, "--tasks",
       "wikitext2", "--seqlen", "256", "--data-dir", demo + "/heldout", "--tp", "2"},
      log);
  // The two ranks once both run the rank's program: until a rank's exec, its
  // /proc/<pid>/environ still shows the launcher's environment, without BITSWEEP_TP_RANK.
  std::vector<pid_t> ranks;
  pid_t victim = -1;  // the rank whose environment says rank 1
  bitsweep::testing::WaitUntil(
      [&] {
        ranks = Children(launcher);
        victim = -1;
        for (pid_t p : ranks) {
          if (Slurp("/proc/" + std::to_string(p) + "/environ")
                  .find(std::string("BITSWEEP_TP_RANK=1") + '\0') != std::string::npos) {
            victim = p;
          }
        }
        return ranks.size() == 2 && victim > 0;
      },
      std::chrono::seconds(10));
  REQUIRE(ranks.size() == 2);
  REQUIRE(victim > 0);
  // Mid-job: the victim has connected to rank 0 (the rendezvous store and the process group open
  // two or more TCP connections, before any model work).
  REQUIRE(bitsweep::testing::WaitUntil(
      [&] { return bitsweep::testing::EstablishedTcpConnections(victim) >= 2; },
      std::chrono::seconds(60)));
  kill(victim, SIGKILL);
  int status = 0;
  waitpid(launcher, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(Slurp(log), Contains("rank 1 of 2 was killed by signal 9"));
  for (pid_t p : ranks) CHECK_FALSE(fs::exists("/proc/" + std::to_string(p)));
}
