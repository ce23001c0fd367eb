// bench/billm_linear: BillmQuantize (quant/billm.h) alone on each linear shape of a Qwen3
// decoder layer, with its ratio to GptqQuantize (w4 g128, act-order) on the same weight and
// Hessian, measured in the same run: the per-linear kernel under BiLLM's layer entry point,
// which bench_quant_layer times.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "bench/shapes.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "quant/billm.h"
#include "quant/gptq.h"

namespace {

namespace model = bitsweep::model;
namespace quant = bitsweep::quant;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// H = 2/N x^T x from 2 * in correlated rows.
at::Tensor RandomHessian(int64_t in) {
  at::Tensor x = at::randn({2 * in, in}).matmul(at::eye(in) + 0.3 * at::randn({in, in}) / 8);
  return x.t().matmul(x) * (2.0 / x.size(0));
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "0.6b";
  CLI::App app{"Seconds of BillmQuantize vs GptqQuantize per linear of a Qwen3 layer"};
  app.add_option("--shape", shape, "0.6b or 8b layer shapes")
      ->capture_default_str()
      ->check(CLI::IsMember({"0.6b", "8b"}));
  CLI11_PARSE(app, argc, argv);
  model::ConfigureRuntime();
  c10::InferenceMode guard;
  const model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes(shape, 1);
  std::printf("bench/billm_linear: Qwen3-%s linear shapes, threads %d\n", shape.c_str(),
              at::get_num_threads());
  const int64_t H = o.hidden_size, I = o.intermediate_size, Q = o.num_heads * o.head_dim;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {Q, H}, {o.num_kv_heads * o.head_dim, H}, {H, Q}, {I, H}, {H, I}};
  for (const auto& [rows, cols] : shapes) {
    at::manual_seed(12);
    const at::Tensor w = at::randn({rows, cols}) * 0.02;
    const at::Tensor h = RandomHessian(cols);
    auto t0 = std::chrono::steady_clock::now();
    auto b = quant::BillmQuantize(w, h, quant::BillmOptions{});
    const double billm_s = Seconds(t0);
    quant::GptqOptions go;
    go.grid.bits = 4;
    go.grid.group_size = 128;
    go.act_order = true;
    t0 = std::chrono::steady_clock::now();
    auto q = quant::GptqQuantize(w, h, go);
    const double gptq_s = Seconds(t0);
    if (!b.ok() || !q.ok()) {
      std::printf("  [%5lld x %5lld] %s\n", static_cast<long long>(rows),
                  static_cast<long long>(cols),
                  (!b.ok() ? b.status() : q.status()).ToString().c_str());
      continue;
    }
    std::printf(
        "  BillmQuantize [%5lld x %5lld] %7.3f s, GPTQ w4 g128 %7.3f s, ratio %5.2f, "
        "salient %.3f\n",
        static_cast<long long>(rows), static_cast<long long>(cols), billm_s, gptq_s,
        billm_s / gptq_s, b->salient_fraction);
  }
  return 0;
}
