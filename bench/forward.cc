// bench/forward: throughput of WikiText-style perplexity windows against the machine's own
// matmul throughput on the same GEMM shapes, measured in the same run.
//
// Model: Qwen3-0.6B's layer shapes (hidden 1024, 16 query / 8 KV heads of 128, MLP 3072), the
// real 151936-entry vocabulary (tied lm_head), a few layers, random weights.
// Model FLOPs per window: 2*T*(decoder linear weights + lm_head) + causal attention
// 4 * heads * head_dim * T(T+1)/2 (QK^T and PV over the keys each query may see).
// Reference: at::matmul on exactly the model's GEMM shapes ([T, in] x [in, out] for every
// linear, the lm_head in the evaluator's 512-token chunks), timed the same way.
// Prints both FLOP/s and their ratio; the target is ratio >= 0.7.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/shapes.h"
#include "eval/perplexity.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int64_t layers = 2, seqlen = 2048, windows = 2, vocab = 151936;
  std::string dtype_name = "fp32";
  CLI::App app{"Perplexity-window throughput vs matmul throughput (ratio in one run)"};
  app.add_option("--layers", layers, "Decoder layers")->capture_default_str();
  app.add_option("--seqlen", seqlen, "Window length")->capture_default_str();
  app.add_option("--windows", windows, "Windows to time")->capture_default_str();
  app.add_option("--vocab", vocab, "Vocabulary size")->capture_default_str();
  app.add_option("--dtype", dtype_name, "fp32 or bf16")->capture_default_str();
  bitsweep::model::RuntimeOptions ro;
  bool default_heap = false;
  app.add_option("--threads", ro.threads, "Intra-op threads (0 = all)")->capture_default_str();
  app.add_flag("--default-heap", default_heap, "Keep glibc's default mmap threshold");
  CLI11_PARSE(app, argc, argv);
  ro.retain_heap = !default_heap;
  bitsweep::model::ConfigureRuntime(ro);

  bitsweep::model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes("0.6b", layers);
  o.vocab_size = vocab;
  const auto config = bitsweep::model::TinyConfig(o, vocab);
  bitsweep::model::LoadOptions lo;
  lo.dtype = *bitsweep::model::ParseComputeDType(dtype_name);
  auto model = bitsweep::model::Qwen3Model::FromTensors(
      config, bitsweep::model::RandomQwen3Weights(config, 0), lo);
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const auto scalar = lo.dtype == bitsweep::model::ComputeDType::kBFloat16 ? at::kBFloat16
                                                                            : at::kFloat;

  // Stream of random ids, one warm-up window plus the timed ones.
  std::vector<int32_t> stream((windows + 1) * seqlen);
  uint64_t x = 88172645463325252ULL;
  for (auto& t : stream) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t = static_cast<int32_t>(x % static_cast<uint64_t>(vocab));
  }
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = seqlen;
  po.max_windows = 1;
  (void)bitsweep::eval::EvaluatePerplexity(**model, stream, po);  // warm-up
  std::vector<int32_t> timed(stream.begin() + seqlen, stream.end());
  po.max_windows = windows;
  auto t0 = std::chrono::steady_clock::now();
  auto r = bitsweep::eval::EvaluatePerplexity(**model, timed, po);
  const double model_s = Seconds(t0);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    return 1;
  }

  const int64_t H = config.hidden_size, T = seqlen;
  struct Gemm {
    int64_t m, k, n, count;
  };
  std::vector<Gemm> gemms = {
      {T, H, config.q_dim(), layers},       {T, H, config.kv_dim(), 2 * layers},
      {T, config.q_dim(), H, layers},       {T, H, config.intermediate_size, 2 * layers},
      {T, config.intermediate_size, H, layers}};
  for (int64_t s = 0; s < T - 1; s += 512) gemms.push_back({std::min<int64_t>(512, T - 1 - s), H, vocab, 1});
  double linear_flops = 0;
  for (const auto& g : gemms) linear_flops += 2.0 * g.m * g.k * g.n * g.count;
  const double attn_flops = 4.0 * config.num_attention_heads * config.head_dim * T * (T + 1) / 2.0 *
                            static_cast<double>(layers);
  const double model_flops = (linear_flops + attn_flops) * windows;

  c10::InferenceMode guard;
  double gemm_s = 0;
  for (int rep = 0; rep < windows + 1; ++rep) {
    for (const auto& g : gemms) {
      at::Tensor a = at::randn({g.m, g.k}).to(scalar);
      at::Tensor w = at::randn({g.n, g.k}).to(scalar);
      for (int64_t c = 0; c < g.count; ++c) {
        auto t1 = std::chrono::steady_clock::now();
        at::Tensor y = at::matmul(a, w.t());
        if (rep > 0) gemm_s += Seconds(t1);  // first repetition warms up
      }
    }
  }
  const double gemm_flops_per_s = linear_flops * windows / gemm_s;
  const double model_flops_per_s = model_flops / model_s;
  std::printf("bench/forward: layers=%lld seqlen=%lld windows=%lld vocab=%lld dtype=%s threads=%d\n",
              static_cast<long long>(layers), static_cast<long long>(seqlen),
              static_cast<long long>(windows), static_cast<long long>(vocab), dtype_name.c_str(),
              at::get_num_threads());
  std::printf("  perplexity windows: %.1f tokens/s, %.2f GFLOP/s (model FLOPs incl. causal attention)\n",
              windows * T / model_s, model_flops_per_s / 1e9);
  std::printf("  matmul, same shapes: %.2f GFLOP/s\n", gemm_flops_per_s / 1e9);
  std::printf("  ratio model/matmul: %.3f (target >= 0.7)\n", model_flops_per_s / gemm_flops_per_s);
  return 0;
}
