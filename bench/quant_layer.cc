// bench/quant_layer: the per-layer entry points of AWQ, SmoothQuant and BiLLM at Qwen3 layer
// shapes, each as seconds per decoder layer and as a ratio to the plain FP forward of the same
// layer over the same calibration tokens, measured in the same run; then BillmQuantize alone on
// each linear shape of the layer with its ratio to GptqQuantize (w4 g128, act-order) on the same
// weight and Hessian. bench_quant times the whole driver per method; this isolates the layer
// entry points (hidden test cases that printed WARNs before).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "quant/awq.h"
#include "quant/billm.h"
#include "quant/gptq.h"
#include "quant/smoothquant.h"

namespace {

namespace model = bitsweep::model;
namespace quant = bitsweep::quant;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

model::TinyModelOptions Shape(const std::string& name) {
  model::TinyModelOptions o;
  o.num_layers = 1;
  o.head_dim = 128;
  if (name == "8b") {
    o.hidden_size = 4096, o.intermediate_size = 12288, o.num_heads = 32, o.num_kv_heads = 8;
  } else {
    o.hidden_size = 1024, o.intermediate_size = 3072, o.num_heads = 16, o.num_kv_heads = 8;
  }
  return o;
}

// One fresh one-layer model (the methods change its weights) and its calibration inputs.
struct Layer {
  std::unique_ptr<model::Qwen3Model> m;
  model::RopeTables rope;
  std::vector<at::Tensor> xs;
  quant::LayerJob job;
};

std::unique_ptr<Layer> MakeLayer(const model::Qwen3Config& c,
                                 const std::vector<at::Tensor>& inputs) {
  auto m = model::Qwen3Model::FromTensors(c, model::RandomQwen3Weights(c, 1));
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    std::exit(1);
  }
  auto l = std::make_unique<Layer>();
  l->m = std::move(m).value();
  l->rope = l->m->MakeRope(inputs.front().size(1));
  for (const auto& x : inputs) l->xs.push_back(x.clone());  // the methods replace *job.xs
  l->job.model = l->m.get();
  l->job.index = 0;
  l->job.prefix = "model.layers.0.";
  l->job.xs = &l->xs;
  l->job.rope = &l->rope;
  return l;
}

// H = 2/N x^T x from 2 * in correlated rows.
at::Tensor RandomHessian(int64_t in) {
  at::Tensor x = at::randn({2 * in, in}).matmul(at::eye(in) + 0.3 * at::randn({in, in}) / 8);
  return x.t().matmul(x) * (2.0 / x.size(0));
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "0.6b", methods = "awq,smoothquant,billm";
  int64_t nsamples = 16, seqlen = 512;
  bool skip_linears = false;
  CLI::App app{"Seconds per decoder layer of AWQ, SmoothQuant and BiLLM vs the FP forward"};
  app.add_option("--shape", shape, "0.6b or 8b layer shapes")
      ->capture_default_str()
      ->check(CLI::IsMember({"0.6b", "8b"}));
  app.add_option("--nsamples", nsamples, "Calibration samples")->capture_default_str();
  app.add_option("--seqlen", seqlen, "Calibration sample length")->capture_default_str();
  app.add_option("--methods", methods, "Comma-separated: awq, smoothquant, billm")
      ->capture_default_str();
  app.add_flag("--skip-linears", skip_linears, "Skip BillmQuantize vs GptqQuantize per linear");
  CLI11_PARSE(app, argc, argv);
  std::set<std::string> chosen;
  for (size_t b = 0, e; b <= methods.size(); b = e + 1) {
    e = methods.find(',', b);
    if (e == std::string::npos) e = methods.size();
    chosen.insert(methods.substr(b, e - b));
  }
  // The driver's runtime settings (its retained heap matters: without it page faults tripled
  // AWQ's time).
  model::ConfigureRuntime();
  c10::InferenceMode guard;

  const model::TinyModelOptions o = Shape(shape);
  const model::Qwen3Config c = model::TinyConfig(o, 1024);
  at::manual_seed(1);
  std::vector<at::Tensor> inputs;
  for (int64_t k = 0; k < nsamples; ++k) inputs.push_back(at::randn({1, seqlen, o.hidden_size}));
  std::printf(
      "bench/quant_layer: Qwen3-%s layer shapes, %lld x %lld calibration tokens, threads %d\n",
      shape.c_str(), static_cast<long long>(nsamples), static_cast<long long>(seqlen),
      at::get_num_threads());

  // The reference: the layer's FP forward over the same tokens.
  double fp_s = 0;
  {
    auto l = MakeLayer(c, inputs);
    (void)l->m->RunLayer(0, l->xs.front(), l->rope);  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& x : l->xs) x = l->m->RunLayer(0, x, l->rope);
    fp_s = Seconds(t0);
  }
  std::printf("  %-34s %8.2f s\n", "FP forward of the layer", fp_s);
  auto report = [&](const std::string& what, double s, const bitsweep::Status& st) {
    if (!st.ok()) {
      std::printf("  %-34s %s\n", what.c_str(), st.ToString().c_str());
      return;
    }
    std::printf("  %-34s %8.2f s per layer  %6.1fx the FP forward\n", what.c_str(), s, s / fp_s);
  };

  if (chosen.count("awq") > 0) {
    for (const int64_t group : {int64_t{128}, int64_t{-1}}) {
      auto l = MakeLayer(c, inputs);
      quant::QuantGrid g;
      g.bits = 4;
      g.group_size = group;
      g.kind = quant::GridKind::kMinMax;
      quant::QuantizeResult out;
      const auto t0 = std::chrono::steady_clock::now();
      const bitsweep::Status st = quant::AwqQuantizeLayer(l->job, g, quant::AwqOptions{}, &out);
      report("AWQ w4 g" + std::to_string(group) + " (clip)", Seconds(t0), st);
    }
  }
  if (chosen.count("smoothquant") > 0) {
    for (const bool smooth : {true, false}) {
      auto l = MakeLayer(c, inputs);
      quant::SmoothQuantOptions so;
      so.smooth = smooth;
      quant::QuantizeResult out;
      const auto t0 = std::chrono::steady_clock::now();
      const bitsweep::Status st = quant::SmoothQuantLayer(l->job, 8, so, &out);
      report(std::string("SmoothQuant W8 ") + (smooth ? "smoothed" : "not smoothed"), Seconds(t0),
             st);
    }
  }
  if (chosen.count("billm") > 0) {
    auto l = MakeLayer(c, inputs);
    quant::QuantizeResult out;
    const auto t0 = std::chrono::steady_clock::now();
    const bitsweep::Status st = quant::BillmQuantizeLayer(l->job, quant::BillmOptions{}, &out);
    report("BiLLM", Seconds(t0), st);
    if (st.ok()) {
      std::printf("  %-34s effective bits (study) %.3f, storage bits %.3f\n", "",
                  out.summary.at("billm_effective_bits_study"),
                  out.summary.at("billm_storage_bits"));
    }
    if (!skip_linears) {
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
    }
  }
  return 0;
}
