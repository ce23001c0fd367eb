// bench/tp: tensor parallelism on CPU with Gloo, on a model with Qwen3-1.7B's shapes (hidden
// 2048, MLP 6144, 16 query / 8 KV heads of 128, vocabulary 151,936, tied embeddings) and a few
// layers. For TP = 1, 2, 4 the bench launches the ranks as processes (common/tp_launch.h, the
// same launcher the workers use) and each rank reports its peak RSS and its times: loading its
// shard, the perplexity of one window of seqlen tokens (eval/perplexity: the forward, then the
// vocabulary-parallel scores of the LM head), and quantizing every layer with --method (w4 g128,
// GPTQ by default). Printed side by side, with each size's per-rank peak memory and times as
// ratios to TP=1 measured in the same run.
//
//   bench_tp [--layers 4] [--seqlen 512] [--nsamples 4] [--threads 0] [--sizes 1,2,4]
//            [--method gptq|awq|rtn]
//
// On a machine with fewer cores than ranks the ranks share cores: times then show the cost of
// communication and duplicated work rather than a speed-up; memory is what TP is for here.
#include <sys/resource.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/cpus.h"
#include "common/tp_launch.h"
#include "eval/perplexity.h"
#include "model/collective_gloo.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "quant/quantize_model.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double PeakRssMb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

struct Flags {
  int64_t layers = 4, seqlen = 512, nsamples = 4;
  int threads = 0;
  std::string sizes = "1,2,4";
  std::string method = "gptq";
  std::string dir = "build/bench-tp";
  // Internal: run as a rank (set by the launcher's command line).
  bool rank_run = false;
  std::string out;
};

// The checkpoint of `layers` decoder layers (one folder per depth, so --layers is honoured when
// the scratch folder already holds another depth's checkpoint).
std::string ModelDir(const Flags& f) { return f.dir + "/model-" + std::to_string(f.layers) + "l"; }

// One rank: load the shard, one evaluation, the quantization of every layer; a line of numbers
// to `out`.
int RunRank(const Flags& f) {
  auto env = bitsweep::TpEnvFromEnvironment();
  if (!env.ok() || !*env) {
    std::fprintf(stderr, "bench_tp: rank without a rendezvous\n");
    return 2;
  }
  const bitsweep::TpEnv e = **env;
  bitsweep::model::RuntimeOptions ro;
  ro.threads = f.threads > 0 ? f.threads : std::max(1, bitsweep::AvailableCpus() / e.world);
  bitsweep::model::ConfigureRuntime(ro);
  bitsweep::model::Rendezvous r;
  r.host = e.host;
  r.port = e.port;
  r.rank = e.rank;
  r.world_size = e.world;
  auto tp = bitsweep::model::ConnectGloo(r);
  if (!tp.ok()) {
    std::fprintf(stderr, "bench_tp: %s\n", tp.status().ToString().c_str());
    return 1;
  }
  c10::InferenceMode guard;
  bitsweep::model::LoadOptions lo;
  lo.tp = *tp;
  auto t0 = Clock::now();
  auto model = bitsweep::model::Qwen3Model::Load(ModelDir(f), lo);
  if (!model.ok()) {
    std::fprintf(stderr, "bench_tp: %s\n", model.status().ToString().c_str());
    return 1;
  }
  const double load_s = Seconds(t0);
  at::manual_seed(1);
  const at::Tensor ids = at::randint((*model)->config().vocab_size, {f.seqlen}, at::kInt);
  const std::vector<int32_t> stream(ids.data_ptr<int32_t>(), ids.data_ptr<int32_t>() + f.seqlen);
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = f.seqlen;
  for (int pass = 0; pass < 2; ++pass) {  // a warm-up, then the timed one
    t0 = Clock::now();
    auto ppl = bitsweep::eval::EvaluatePerplexity(**model, stream, po);
    if (!ppl.ok()) {
      std::fprintf(stderr, "bench_tp: %s\n", ppl.status().ToString().c_str());
      return 1;
    }
  }
  const double forward_s = Seconds(t0);
  const double forward_rss = PeakRssMb();

  bitsweep::quant::CalibrationSet calib;
  const at::Tensor c = at::randint((*model)->config().vocab_size, {f.nsamples, f.seqlen}, at::kInt);
  for (int64_t i = 0; i < f.nsamples; ++i) {
    const int32_t* p = c[i].data_ptr<int32_t>();
    calib.samples.emplace_back(p, p + f.seqlen);
  }
  bitsweep::quant::QuantizeOptions qo;
  bitsweep::QuantConfig qc;
  qc.method = f.method;
  qc.wbits = 4;
  qc.group_size = 128;
  auto method = bitsweep::quant::MakeQuantizer(qc);
  if (!method.ok()) {
    std::fprintf(stderr, "bench_tp: %s\n", method.status().ToString().c_str());
    return 1;
  }
  qo.method = *method;
  t0 = Clock::now();
  auto q = bitsweep::quant::QuantizeModel(**model, &calib, qo);
  if (!q.ok()) {
    std::fprintf(stderr, "bench_tp: %s\n", q.status().ToString().c_str());
    return 1;
  }
  const double quant_s = Seconds(t0);
  std::ofstream(f.out + "." + std::to_string(e.rank))
      << load_s << " " << forward_s << " " << forward_rss << " " << quant_s << " " << PeakRssMb()
      << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"bench_tp: per-rank peak memory and time for TP = 1, 2, 4 (Qwen3-1.7B shapes)"};
  app.add_option("--layers", f.layers, "Decoder layers")->capture_default_str();
  app.add_option("--seqlen", f.seqlen, "Tokens per forward and per calibration sample")
      ->capture_default_str();
  app.add_option("--nsamples", f.nsamples, "Calibration samples")->capture_default_str();
  app.add_option("--method", f.method, "Quantization method, w4 g128")
      ->check(CLI::IsMember({"gptq", "awq", "rtn"}))
      ->capture_default_str();
  app.add_option("--threads", f.threads, "Threads per rank (0 = cores / ranks)")
      ->capture_default_str();
  app.add_option("--sizes", f.sizes, "Tensor-parallel sizes to run")->capture_default_str();
  app.add_option("--dir", f.dir, "Scratch folder for the checkpoint")->capture_default_str();
  app.add_flag("--rank-run", f.rank_run, "(internal) run as one rank");
  app.add_option("--out", f.out, "(internal) per-rank result prefix");
  CLI11_PARSE(app, argc, argv);
  if (f.rank_run) return RunRank(f);

  const std::string model_dir = ModelDir(f);
  if (!fs::exists(model_dir + "/config.json")) {
    bitsweep::model::TinyModelOptions o;
    o.num_layers = f.layers;
    o.hidden_size = 2048;
    o.intermediate_size = 6144;
    o.num_heads = 16;
    o.num_kv_heads = 8;
    o.head_dim = 128;
    o.vocab_size = 151936;
    o.tie_word_embeddings = true;
    o.dtype = "f32";
    o.max_shard_bytes = 1ULL << 30;
    std::fprintf(stderr, "bench_tp: writing a %lld-layer checkpoint with Qwen3-1.7B shapes to %s\n",
                 static_cast<long long>(f.layers), model_dir.c_str());
    auto s = bitsweep::model::WriteTinyModel(model_dir, o);
    if (!s.ok()) {
      std::fprintf(stderr, "bench_tp: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return 1;
  std::vector<int> sizes;
  std::stringstream ss(f.sizes);
  for (std::string item; std::getline(ss, item, ',');) sizes.push_back(std::stoi(item));

  struct Row {
    int tp;
    double load, forward, forward_rss, gptq, peak;
  };
  std::vector<Row> rows;
  for (int tp : sizes) {
    const std::string out = f.dir + "/rank-tp" + std::to_string(tp);
    std::vector<std::string> args = {std::string(self, n), "--rank-run", "--out", out,
                                     "--dir", f.dir, "--layers", std::to_string(f.layers),
                                     "--seqlen", std::to_string(f.seqlen),
                                     "--nsamples", std::to_string(f.nsamples), "--method",
                                     f.method, "--threads",
                                     std::to_string(f.threads)};
    bitsweep::LaunchOptions lo;
    lo.quiet_followers = false;
    auto s = bitsweep::LaunchRanks(args, tp, lo);
    if (!s.ok()) {
      std::fprintf(stderr, "bench_tp: TP=%d: %s\n", tp, std::string(s.message()).c_str());
      return 1;
    }
    Row row{tp, 0, 0, 0, 0, 0};
    for (int r = 0; r < tp; ++r) {  // the slowest rank's time, the largest rank's memory
      std::ifstream in(out + "." + std::to_string(r));
      double load, forward, forward_rss, gptq, peak;
      in >> load >> forward >> forward_rss >> gptq >> peak;
      row.load = std::max(row.load, load);
      row.forward = std::max(row.forward, forward);
      row.forward_rss = std::max(row.forward_rss, forward_rss);
      row.gptq = std::max(row.gptq, gptq);
      row.peak = std::max(row.peak, peak);
    }
    rows.push_back(row);
  }
  std::printf("Qwen3-1.7B shapes, %lld layers, seqlen %lld, %s w4 g128 on %lld samples; "
              "%d CPUs available\n",
              static_cast<long long>(f.layers), static_cast<long long>(f.seqlen), f.method.c_str(),
              static_cast<long long>(f.nsamples), bitsweep::AvailableCpus());
  std::printf("%4s %14s %16s %12s %12s %12s   ratios to TP=1 (ppl RSS, peak RSS, ppl, %s)\n",
              "TP", "load s/rank", "ppl RSS MB", "ppl s", (f.method + " s").c_str(),
              "peak RSS MB", f.method.c_str());
  for (const Row& r : rows) {
    const Row& b = rows.front();
    std::printf("%4d %14.2f %16.0f %12.3f %12.2f %12.0f   %.2f %.2f %.2f %.2f\n", r.tp, r.load,
                r.forward_rss, r.forward, r.gptq, r.peak, r.forward_rss / b.forward_rss,
                r.peak / b.peak, r.forward / b.forward, r.gptq / b.gptq);
  }
  return 0;
}
