// bench/scale: the study's real sizes on this machine's memory. Generates a checkpoint with a
// released Qwen3's shapes (`bitsweep make-tiny-model`: random weights, the real config and the
// Qwen3 tokenizer) and runs each step as its own `bitsweep` process, sampling the process's
// /proc status every 20 ms: wall time, seconds per decoder layer, peak anonymous memory
// (RssAnon: what the process allocated) beside peak VmHWM (which also counts the checkpoint's
// mapped file pages), and the peak anonymous memory as a fraction of the checkpoint's size.
//
//   bench_scale [--preset 8b|30b-a3b-slice] [--layers N] [--steps make,eval,rtn,gptq]
//               [--dir build/bench-scale] [--data-dir ../shared/data] [--max-memory SIZE]
//
// Presets: 8b = Qwen3-8B (hidden 4096, MLP 12288, 36 layers, 32/8 heads of 128, untied
// 151,936 vocabulary; 16 GB in bf16); 30b-a3b-slice = 4 layers of Qwen3-30B-A3B (hidden 2048,
// 128 experts, 8 active, expert MLP 768, 32/4 heads of 128). It ends with the totals projected
// for the whole Qwen3-30B-A3B (48 layers) and Qwen3-32B (64 layers of hidden 5120, MLP 25600,
// 64/8 heads): time per layer scaled by the layer's parameters, memory as one streamed layer.
// Needs about 17 GB of free disk for the 8b preset.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/memory.h"
#include "common/process.h"
#include "model/memory_plan.h"
#include "model/qwen3_config.h"
#include "model/released.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::model::ComputeDType;
using bitsweep::model::Qwen3Config;

struct Peak {
  double seconds = 0;
  int64_t anon = 0, hwm = 0;  // bytes
  int rc = -1;
};

int64_t StatusKib(const std::string& status, const std::string& key) {
  const size_t at = status.find(key + ":");
  if (at == std::string::npos) return 0;
  return std::atoll(status.c_str() + at + key.size() + 1);
}

// Runs argv to completion, sampling its memory.
Peak RunSampled(const std::vector<std::string>& argv, const std::string& log) {
  Peak p;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = bitsweep::SpawnLogged(argv, log);
  if (pid <= 0) return p;
  while (true) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string s = ss.str();
    p.anon = std::max(p.anon, StatusKib(s, "RssAnon") * 1024);
    p.hwm = std::max(p.hwm, StatusKib(s, "VmHWM") * 1024);
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      p.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p;
}

int64_t FolderBytes(const std::string& dir) {
  int64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".safetensors") total += e.file_size();
  }
  return total;
}

// `bitsweep make-tiny-model` arguments for a checkpoint of `c`'s shapes (random bf16 weights,
// the Qwen3 tokenizer).
std::vector<std::string> MakeArgs(const Qwen3Config& c, const std::string& out,
                                  const std::string& tokenizer) {
  auto n = [](int64_t v) { return std::to_string(v); };
  std::vector<std::string> a = {"make-tiny-model", "--out", out, "--dtype", "bf16",
                                "--tokenizer", tokenizer, "--vocab-size", n(c.vocab_size),
                                "--layers", n(c.num_hidden_layers), "--head-dim", n(c.head_dim),
                                "--hidden-size", n(c.hidden_size), "--intermediate-size",
                                n(c.intermediate_size), "--heads", n(c.num_attention_heads),
                                "--kv-heads", n(c.num_key_value_heads),
                                "--max-shard-bytes", n(int64_t{4} << 30)};
  if (!c.tie_word_embeddings) a.push_back("--untied");
  if (c.is_moe()) {
    for (const std::string& x : {std::string("--moe"), std::string("--experts"), n(c.num_experts),
                                 std::string("--experts-per-token"), n(c.num_experts_per_tok),
                                 std::string("--moe-intermediate-size"),
                                 n(c.moe_intermediate_size)}) {
      a.push_back(x);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("bitsweep scale benchmark");
  std::string preset = "8b", steps = "make,eval,rtn,gptq", dir = "build/bench-scale";
  std::string data_dir = "../shared/data", max_memory, bitsweep_bin;
  int64_t layers = 0;
  bool keep_outputs = false;
  app.add_option("--preset", preset)->check(CLI::IsMember({"8b", "30b-a3b-slice"}));
  app.add_option("--layers", layers, "Decoder layers (0: the preset's)");
  app.add_option("--steps", steps);
  app.add_option("--dir", dir, "Scratch folder (the checkpoint is kept for the next run)");
  app.add_option("--data-dir", data_dir);
  app.add_option("--max-memory", max_memory, "Passed to bitsweep eval");
  app.add_option("--bitsweep", bitsweep_bin, "The bitsweep binary (default: build/cli/bitsweep)");
  app.add_flag("--keep-outputs", keep_outputs,
               "Keep each quantize step's output folder (by default removed once measured: the "
               "8B shape's is 21 GB beside the 16 GB checkpoint)");
  CLI11_PARSE(app, argc, argv);
  if (bitsweep_bin.empty()) {
    bitsweep_bin = (fs::read_symlink("/proc/self/exe").parent_path() / "../cli/bitsweep").string();
  }
  auto released = bitsweep::model::ReleasedQwen3Config(preset == "8b" ? "Qwen3-8B"
                                                                      : "Qwen3-30B-A3B");
  if (!released.ok()) return 1;
  Qwen3Config measured = *released;
  if (layers == 0) layers = preset == "8b" ? measured.num_hidden_layers : 4;
  measured.num_hidden_layers = layers;
  const std::string model = dir + "/" + preset + "-" + std::to_string(layers);
  fs::create_directories(dir);
  std::vector<std::string> make = {bitsweep_bin};
  for (auto& a : MakeArgs(measured, model, data_dir + "/qwen3_tokenizer")) make.push_back(a);
  struct Step {
    std::string name;
    std::vector<std::string> argv;
    std::string output = "";  // a quantize step's folder, removed after it unless --keep-outputs
  };
  std::vector<Step> plan;
  auto want = [&](const std::string& s) { return ("," + steps + ",").find("," + s + ",") != std::string::npos; };
  if (want("make") || !fs::exists(model + "/config.json")) plan.push_back({"make", make});
  if (want("eval")) {
    std::vector<std::string> a = {bitsweep_bin, "eval", "--model", model, "--tasks", "wikitext2",
                                  "--seqlen", "512", "--max-windows", "1", "--dtype", "fp32",
                                  "--data-dir", data_dir, "--json"};
    if (!max_memory.empty()) {
      a.push_back("--max-memory");
      a.push_back(max_memory);
    }
    plan.push_back({"eval wikitext2 1x512", a});
  }
  for (const char* method : {"rtn", "gptq"}) {
    if (!want(method)) continue;
    std::vector<std::string> a = {bitsweep_bin, "quantize", "--model", model, "--method", method,
                                  "--wbits", "4", "--group", "128", "--data-dir", data_dir,
                                  "--out", dir + "/" + preset + "-" + method};
    if (std::string(method) == "gptq") {
      // 2 x 512 tokens from the C4 documents the shared data has (its validation subset: the
      // training shards and WikiText-2's train split are not there). Timing and memory only.
      const std::string calib = data_dir + "/c4/c4-validation-subset-2000.jsonl";
      for (const std::string& x : {std::string("--calib"), calib, std::string("--nsamples"),
                                   std::string("2"), std::string("--seqlen"), std::string("512")}) {
        a.push_back(x);
      }
    }
    plan.push_back({std::string(method) + " w4 g128", a, dir + "/" + preset + "-" + method});
  }

  std::printf("bench_scale: %s, %lld layers, checkpoint %s\n", preset.c_str(),
              static_cast<long long>(layers), model.c_str());
  std::printf("%-22s %9s %9s %14s %14s %10s\n", "step", "wall s", "s/layer", "peak anon",
              "peak VmHWM", "anon/ckpt");
  double rtn_per_layer = 0;
  for (const Step& s : plan) {
    const std::string log = dir + "/" + s.name.substr(0, s.name.find(' ')) + ".log";
    if (!s.output.empty()) fs::remove_all(s.output);  // a failed earlier run's, taking disk
    const Peak p = RunSampled(s.argv, log);
    if (!s.output.empty() && !keep_outputs) fs::remove_all(s.output);
    const int64_t ckpt = fs::exists(model) ? FolderBytes(model) : 0;
    const double per_layer = p.seconds / static_cast<double>(layers);
    if (s.name.rfind("rtn", 0) == 0) rtn_per_layer = per_layer;
    std::printf("%-22s %9.1f %9.2f %14s %14s %10.3f%s\n", s.name.c_str(), p.seconds, per_layer,
                bitsweep::FormatBytes(p.anon).c_str(), bitsweep::FormatBytes(p.hwm).c_str(),
                ckpt > 0 ? static_cast<double>(p.anon) / static_cast<double>(ckpt) : 0.0,
                p.rc == 0 ? "" : ("  FAILED rc " + std::to_string(p.rc) + ", see " + log).c_str());
    std::fflush(stdout);
  }

  // Projections from this run: time per layer scaled by parameters per layer, and the memory of
  // a streamed evaluation (one layer in fp32 plus scoring), for the whole models.
  const double measured_layer =
      static_cast<double>(bitsweep::model::LayerBytes(measured, 0, ComputeDType::kFloat32));
  for (const std::string name : {"Qwen3-30B-A3B", "Qwen3-32B"}) {
    const Qwen3Config c = *bitsweep::model::ReleasedQwen3Config(name);
    const double layer = static_cast<double>(bitsweep::model::LayerBytes(c, 0, ComputeDType::kFloat32));
    auto plan32 = bitsweep::model::PlanModelMemory(c, ComputeDType::kFloat32, 1, int64_t{1} << 40,
                                                   "projection");
    std::printf("projected %-14s %lld layers: rtn ~%.0f s; streamed eval needs one layer %s + "
                "scoring %s (fp32); checkpoint %s in bf16\n",
                name.c_str(), static_cast<long long>(c.num_hidden_layers),
                rtn_per_layer * layer / measured_layer * static_cast<double>(c.num_hidden_layers),
                bitsweep::FormatBytes(static_cast<int64_t>(layer)).c_str(),
                bitsweep::FormatBytes(plan32.ok() ? plan32->scoring_bytes : 0).c_str(),
                bitsweep::FormatBytes(bitsweep::model::ModelBytes(c, ComputeDType::kBFloat16)).c_str());
  }
  return 0;
}
