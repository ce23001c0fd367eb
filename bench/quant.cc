// bench/quant: GPTQ and RTN per decoder layer on Qwen3 layer shapes, the GPTQ core's FLOP/s
// against the machine's matmul FLOP/s (same run), and peak RSS of quantizing a 4-layer and a
// 16-layer model of the same width (driver memory must not grow with depth: ratio <= 1.15).
//
// GPTQ core FLOPs per linear [out, in]: Cholesky work ~ in^3 (inverse + two factorizations)
// plus the error propagation 2 * out * in^2 (each column's error is pushed onto the columns
// to its right: out * in^2 multiply-adds). The matmul reference is at::mm of [out, in] x [in, in].
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bench/shapes.h"
#include "common/catalog.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "quant/export.h"
#include "quant/gptq.h"
#include "quant/quantize_model.h"
#include "quant/rtn.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

bitsweep::model::TinyModelOptions Shape(const std::string& name, int64_t layers) {
  bitsweep::model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes(name, layers);
  o.vocab_size = 1024;  // the vocabulary does not take part in layer-wise quantization
  return o;
}

bitsweep::quant::CalibrationSet RandomCalibration(int64_t n, int64_t seqlen, int64_t vocab) {
  bitsweep::quant::CalibrationSet c;
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int32_t> s(seqlen);
    for (auto& t : s) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      t = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
    }
    c.samples.push_back(std::move(s));
  }
  return c;
}

// Writes a random model of `layers` layers to `dir` (f32), for the streaming RSS comparison.
bool WriteRandomModel(const std::string& dir, const std::string& shape, int64_t layers) {
  auto o = Shape(shape, layers);
  auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  auto w = bitsweep::model::RandomQwen3Weights(config, 0);
  std::vector<std::pair<std::string, at::Tensor>> ordered(w.begin(), w.end());
  return bitsweep::model::WriteModelFolder(dir, config, ordered, "f32", 0).ok();
}

// The production path (as `bitsweep quantize` runs it): a lazy model streamed layer by layer
// through GPTQ into a QuantizedModelWriter. Returns 0 on success.
int QuantizeFolderStreaming(const std::string& dir, int64_t n, int64_t seqlen) {
  bitsweep::model::LoadOptions lo;
  lo.lazy_layers = true;
  auto m = bitsweep::model::Qwen3Model::Load(dir, lo);
  if (!m.ok()) return 1;
  auto calib = RandomCalibration(n, seqlen, (*m)->config().vocab_size);
  bitsweep::quant::QuantizeOptions qo;
  bitsweep::QuantConfig gptq;
  gptq.method = "gptq";
  gptq.wbits = 4;
  gptq.group_size = 128;
  gptq.options["act_order"] = "true";
  qo.method = *bitsweep::quant::MakeQuantizer(gptq);
  auto writer = bitsweep::quant::QuantizedModelWriter::Create(dir + ".q", dir, **m, true);
  if (!writer.ok()) return 1;
  qo.layer_sink = [&](int64_t i, std::map<std::string, bitsweep::quant::QuantizedWeight>& w) {
    bitsweep::Status st = (*writer)->WriteLayer(**m, i, w);
    malloc_trim(0);  // as `bitsweep quantize` does after each layer
    return st;
  };
  auto r = bitsweep::quant::QuantizeModel(**m, &calib, qo);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    return 1;
  }
  return (*writer)->Finish(**m, *r, {{"method", "gptq"}, {"wbits", 4}}).ok() ? 0 : 1;
}

// Runs this binary again (fork + exec: libgomp's thread pool does not survive a bare fork) in
// child mode and returns the child's peak RSS in MB.
double PeakRssOfChild(const std::string& self, const std::string& dir, int64_t n,
                      int64_t seqlen) {
  const std::string ns = std::to_string(n), sl = std::to_string(seqlen);
  pid_t pid = fork();
  if (pid == 0) {
    execl(self.c_str(), self.c_str(), "--child-model", dir.c_str(), "--rss-samples", ns.c_str(),
          "--seqlen", sl.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return usage.ru_maxrss / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "0.6b";
  int64_t nsamples = 16, seqlen = 2048, rss_samples = 8;
  bool skip_rss = false;
  std::string child_model, scratch = "/tmp/bitsweep-bench-quant";
  CLI::App app{"Seconds per layer for every method, GPTQ core FLOP/s vs matmul, RSS vs depth"};
  app.add_option("--shape", shape, "0.6b or 8b layer shapes")->capture_default_str()
      ->check(CLI::IsMember({"0.6b", "8b"}));
  app.add_option("--nsamples", nsamples, "Calibration samples (the study uses 128)")
      ->capture_default_str();
  app.add_option("--seqlen", seqlen, "Calibration sample length")->capture_default_str();
  app.add_option("--rss-samples", rss_samples, "Calibration samples in the RSS comparison")
      ->capture_default_str();
  app.add_flag("--skip-rss", skip_rss, "Skip the 4- vs 16-layer RSS comparison");
  app.add_option("--scratch", scratch, "Folder for the RSS comparison's model files")
      ->capture_default_str();
  app.add_option("--child-model", child_model, "(internal) stream-quantize this folder, exit");
  CLI11_PARSE(app, argc, argv);
  bitsweep::model::ConfigureRuntime();
  c10::InferenceMode guard;
  if (!child_model.empty()) return QuantizeFolderStreaming(child_model, rss_samples, seqlen);

  const auto o = Shape(shape, 1);
  const int64_t H = o.hidden_size, I = o.intermediate_size;
  std::printf("bench/quant: Qwen3-%s layer shapes, %lld x %lld calibration tokens, threads %d\n",
              shape.c_str(), static_cast<long long>(nsamples), static_cast<long long>(seqlen),
              at::get_num_threads());

  // 1) The GPTQ core alone on each linear shape, vs matmul FLOP/s on [out, in] x [in, in].
  struct Lin { const char* name; int64_t out, in; };
  const std::vector<Lin> lins = {{"q_proj", o.num_heads * 128, H}, {"k_proj", o.num_kv_heads * 128, H},
                                 {"o_proj", H, o.num_heads * 128}, {"gate_proj", I, H},
                                 {"down_proj", H, I}};
  double core_flops = 0, core_s = 0, mm_flops = 0, mm_s = 0;
  for (const auto& l : lins) {
    at::Tensor w = at::randn({l.out, l.in}) * 0.02;
    at::Tensor x = at::randn({4 * l.in, l.in});
    at::Tensor h = at::mm(x.t(), x) * (2.0 / x.size(0));
    bitsweep::quant::GptqOptions g;
    g.grid.bits = 4;
    g.grid.group_size = 128;
    g.act_order = true;
    (void)bitsweep::quant::GptqQuantize(w, h, g);  // warm-up
    auto t0 = std::chrono::steady_clock::now();
    auto r = bitsweep::quant::GptqQuantize(w, h, g);
    const double s = Seconds(t0);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
    const double flops = 2.0 * l.out * l.in * l.in + 1.0 * l.in * l.in * l.in;
    core_flops += flops;
    core_s += s;
    at::Tensor a = at::randn({l.out, l.in}), b = at::randn({l.in, l.in});
    (void)at::mm(a, b);
    t0 = std::chrono::steady_clock::now();
    at::Tensor c = at::mm(a, b);
    mm_s += Seconds(t0);
    mm_flops += 2.0 * l.out * l.in * l.in;
    auto t1 = std::chrono::steady_clock::now();
    bitsweep::quant::QuantGrid grid;
    grid.bits = 4;
    grid.group_size = 128;
    (void)bitsweep::quant::RtnQuantize(w, grid);
    std::printf("  %-9s [%5lld x %5lld]  GPTQ %.3fs  RTN %.3fs\n", l.name,
                static_cast<long long>(l.out), static_cast<long long>(l.in), s, Seconds(t1));
  }
  std::printf("  GPTQ core: %.2f GFLOP/s; matmul on the same shapes: %.2f GFLOP/s; ratio %.3f\n",
              core_flops / core_s / 1e9, mm_flops / mm_s / 1e9,
              (core_flops / core_s) / (mm_flops / mm_s));

  // 2) Seconds per decoder layer for the whole driver of each method (forwards, statistics,
  //    searches, quantization). A fresh random 2-layer model per method.
  {
    auto cfg = bitsweep::model::TinyConfig(Shape(shape, 2), 1024);
    auto calib = RandomCalibration(nsamples, seqlen, 1024);
    for (const bitsweep::MethodInfo* row : bitsweep::QuantizationMethods()) {
      auto m = bitsweep::model::Qwen3Model::FromTensors(cfg,
                                                        bitsweep::model::RandomQwen3Weights(cfg, 0));
      // 4 bits (8 where activations are quantized too) in groups of 128, GPTQ with act_order.
      bitsweep::QuantConfig qc;
      qc.method = row->name;
      qc.wbits = std::clamp(row->takes_abits ? 8 : 4, row->min_wbits, row->max_wbits);
      qc.group_size = row->group_size_applies ? 128 : -1;
      if (bitsweep::LookupOption(*row, "act_order").ok()) qc.options["act_order"] = "true";
      auto method = bitsweep::quant::MakeQuantizer(qc);
      bitsweep::quant::QuantizeOptions qo;
      if (method.ok()) qo.method = *method;
      auto r = method.ok() ? bitsweep::quant::QuantizeModel(**m, &calib, qo)
                           : bitsweep::StatusOr<bitsweep::quant::QuantizeResult>(method.status());
      if (!r.ok()) {
        std::printf("  %-11s: %s\n", row->name, r.status().ToString().c_str());
        continue;
      }
      std::printf("  %-11s: %.2f s per decoder layer\n", row->name, r->seconds / 2);
    }
  }

  // 3) Peak RSS, 4 vs 16 layers (separate processes).
  if (!skip_rss) {
    const std::string self = "/proc/self/exe";
    char path[4096];
    const ssize_t len = readlink(self.c_str(), path, sizeof(path) - 1);
    const std::string exe = len > 0 ? std::string(path, len) : std::string(argv[0]);
    const std::string d4 = scratch + "/layers4", d16 = scratch + "/layers16";
    if (!WriteRandomModel(d4, shape, 4) || !WriteRandomModel(d16, shape, 16)) {
      std::fprintf(stderr, "cannot write the RSS models under %s\n", scratch.c_str());
      return 1;
    }
    const double rss4 = PeakRssOfChild(exe, d4, rss_samples, seqlen);
    const double rss16 = PeakRssOfChild(exe, d16, rss_samples, seqlen);
    std::printf("  peak RSS (streaming GPTQ from disk to disk, %lld x %lld tokens): 4 layers "
                "%.0f MB, 16 layers %.0f MB, ratio %.3f (target <= 1.15)\n",
                static_cast<long long>(rss_samples), static_cast<long long>(seqlen), rss4, rss16,
                rss16 / rss4);
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  }
  return 0;
}
