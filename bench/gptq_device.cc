// bench/gptq_device: GptqQuantize (w4 g128) on the seven linears of one Qwen3 decoder layer, on a
// chosen device: seconds per linear and for the layer. Weights and Hessians (2/N X^T X of random
// activations) are made on the device first, so only the quantizer is timed. scripts/gpu-check
// runs it on CUDA with the Qwen3-8B shape.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "model/device.h"
#include "quant/gptq.h"

namespace {

struct Linear {
  const char* name;
  int64_t out, in;
};

std::vector<Linear> Layer(const std::string& shape) {
  // hidden, intermediate, q heads x head_dim, kv heads x head_dim (model/released.h).
  int64_t h = 4096, i = 12288, q = 32 * 128, kv = 8 * 128;
  if (shape == "0.6b") h = 1024, i = 3072, q = 16 * 128, kv = 8 * 128;
  return {{"q_proj", q, h},  {"k_proj", kv, h},   {"v_proj", kv, h},  {"o_proj", h, q},
          {"gate_proj", i, h}, {"up_proj", i, h}, {"down_proj", h, i}};
}

void Sync(const c10::Device& d) {
  if (d.is_cuda()) at::empty({1}, at::TensorOptions().device(d)).cpu();  // waits for the stream
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GptqQuantize on one Qwen3 decoder layer's linears, timed on a device"};
  std::string device_spec = "cuda", shape = "8b";
  int64_t tokens = 2048;
  bool act_order = false;
  app.add_option("--device", device_spec, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--shape", shape, "8b or 0.6b layer shapes")->capture_default_str();
  app.add_option("--tokens", tokens, "Calibration tokens behind each Hessian")->capture_default_str();
  app.add_flag("--act-order", act_order, "GPTQ act_order");
  CLI11_PARSE(app, argc, argv);
  auto device = bitsweep::model::ResolveDevice(device_spec);
  if (!device.ok()) {
    std::fprintf(stderr, "bench_gptq_device: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  c10::InferenceMode guard;
  const auto on = at::TensorOptions().dtype(at::kFloat).device(*device);
  bitsweep::quant::GptqOptions o;
  o.grid.bits = 4;
  o.grid.group_size = 128;
  o.act_order = act_order;
  std::printf("GptqQuantize w4 g128%s, Qwen3-%s layer, %lld tokens, on %s\n",
              act_order ? " act-order" : "", shape.c_str(), static_cast<long long>(tokens),
              device->str().c_str());
  double total = 0;
  for (const Linear& l : Layer(shape)) {
    at::manual_seed(1);
    const at::Tensor w = at::randn({l.out, l.in}, on) * 0.02;
    const at::Tensor x = at::randn({tokens, l.in}, on);
    const at::Tensor h = x.t().matmul(x).mul_(2.0 / static_cast<double>(tokens));
    Sync(*device);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = bitsweep::quant::GptqQuantize(w, h, o);
    Sync(*device);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok()) {
      std::fprintf(stderr, "%s: %s\n", l.name, std::string(r.status().message()).c_str());
      return 1;
    }
    total += s;
    std::printf("  %-9s [%5lld x %5lld]  %8.3f s  loss %.4g\n", l.name,
                static_cast<long long>(l.out), static_cast<long long>(l.in), s, r->loss);
  }
  std::printf("  layer total              %8.3f s\n", total);
  return 0;
}
