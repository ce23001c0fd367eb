// bench/stream: layer-streamed evaluation with and without prefetching the next layer
// (LoadOptions::prefetch_layers), against the resident model, in one run. It writes a checkpoint
// with Qwen3-0.6B's or Qwen3-8B's layer shapes (random bf16 weights, a small vocabulary: only
// the decoder layers are timed), then runs the same windows' hidden states through every
// decoder layer (Qwen3Model::RunLayers) three ways and prints seconds per pass and the ratios.
// On CUDA prefetching stages each layer in pinned memory and copies it on a side stream while
// the previous layer runs, so "prefetched / streamed" is the copy time it hides; on the CPU the
// loader thread only overlaps reading and converting the next layer. The three outputs must be
// equal bit for bit (the bench fails otherwise). scripts/gpu-check runs it on CUDA.
//
//   bench_stream [--device cuda] [--shape 8b|0.6b] [--layers 6] [--seqlen 2048] [--windows 4]
//                [--dtype bf16|fp32] [--passes 3] [--dir build/bench-stream]
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "bench/shapes.h"
#include "model/device.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"

namespace {

namespace model = bitsweep::model;

void Sync(const c10::Device& d) {
  if (d.is_cuda()) at::empty({1}, at::TensorOptions().device(d)).cpu();  // waits for the stream
}

struct Run {
  double seconds = 0;  // best pass
  at::Tensor out;      // the last layer's output of the last pass, on the CPU
};

// Best of `passes` passes of every window's hidden states through every decoder layer.
Run Time(const model::Qwen3Model& m, const at::Tensor& ids, int passes) {
  Run r;
  r.seconds = 1e30;
  const model::RopeTables rope = m.MakeRope(ids.size(1));
  for (int p = 0; p < passes; ++p) {
    std::vector<at::Tensor> hidden;
    std::vector<model::RopeTables> ropes;
    for (int64_t w = 0; w < ids.size(0); ++w) {
      hidden.push_back(m.Embed(ids.narrow(0, w, 1)));
      ropes.push_back(rope);
    }
    Sync(m.device());
    const auto start = std::chrono::steady_clock::now();
    const auto status = m.RunLayers(hidden, ropes);
    Sync(m.device());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!status.ok()) {
      std::fprintf(stderr, "bench_stream: %s\n", std::string(status.message()).c_str());
      std::exit(1);
    }
    r.seconds = std::min(r.seconds, s);
    r.out = at::cat(hidden, 0).cpu();
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Layer-streamed evaluation with and without prefetching, against resident"};
  std::string device_spec = "auto", shape = "8b", dtype = "bf16",
              dir = "build/bench-stream";
  int64_t layers = 6, seqlen = 2048, windows = 4;
  int passes = 3;
  app.add_option("--device", device_spec, "cpu, cuda, cuda:N or auto")->capture_default_str();
  app.add_option("--shape", shape, "8b or 0.6b layer shapes")->capture_default_str();
  app.add_option("--layers", layers, "Decoder layers")->capture_default_str();
  app.add_option("--seqlen", seqlen, "Tokens per window")->capture_default_str();
  app.add_option("--windows", windows, "Windows run through each layer")->capture_default_str();
  app.add_option("--dtype", dtype, "Compute dtype: bf16 or fp32")->capture_default_str();
  app.add_option("--passes", passes, "Passes timed (the best is reported)")->capture_default_str();
  app.add_option("--dir", dir, "Scratch folder for the checkpoint")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto device = model::ResolveDevice(device_spec);
  if (!device.ok()) {
    std::fprintf(stderr, "bench_stream: %s\n", std::string(device.status().message()).c_str());
    return 2;
  }
  if (dtype != "bf16" && dtype != "fp32") {
    std::fprintf(stderr, "bench_stream: --dtype must be bf16 or fp32\n");
    return 2;
  }
  const model::ComputeDType compute =
      dtype == "bf16" ? model::ComputeDType::kBFloat16 : model::ComputeDType::kFloat32;

  model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes(shape, layers);
  o.dtype = "bf16";
  o.seed = 3;
  o.vocab_size = 1024;
  o.tie_word_embeddings = true;
  o.max_shard_bytes = uint64_t{1} << 30;
  const std::string folder = dir + "/" + shape + "-" + std::to_string(layers);
  if (!std::filesystem::exists(folder + "/config.json")) {
    const auto made = model::WriteTinyModel(folder, o);
    if (!made.ok()) {
      std::fprintf(stderr, "bench_stream: %s\n", std::string(made.message()).c_str());
      return 1;
    }
  }

  c10::InferenceMode guard;
  at::manual_seed(1);
  const at::Tensor ids = at::randint(0, o.vocab_size, {windows, seqlen}, at::kLong);
  std::printf("bench_stream: Qwen3-%s layer shapes, %lld layers, %lld x %lld tokens, %s on %s, "
              "best of %d\n",
              shape.c_str(), static_cast<long long>(layers), static_cast<long long>(windows),
              static_cast<long long>(seqlen), dtype.c_str(), device->str().c_str(), passes);
  auto load = [&](bool streamed, bool prefetch) {
    model::LoadOptions lo;
    lo.dtype = compute;
    lo.device = *device;
    lo.lazy_layers = lo.lazy_globals = streamed;
    lo.prefetch_layers = prefetch;
    auto m = model::Qwen3Model::Load(folder, lo);
    if (!m.ok()) {
      std::fprintf(stderr, "bench_stream: %s\n", std::string(m.status().message()).c_str());
      std::exit(1);
    }
    return std::move(m).value();
  };
  const Run streamed = Time(*load(true, false), ids, passes);
  const Run prefetched = Time(*load(true, true), ids, passes);
  const Run resident = Time(*load(false, false), ids, passes);
  const bool same =
      at::equal(streamed.out, prefetched.out) && at::equal(streamed.out, resident.out);
  std::printf("  %-34s %10s %10s\n", "mode", "seconds", "per layer");
  for (const auto& [name, r] : {std::pair<const char*, const Run*>{"resident", &resident},
                                {"streamed (read, then run)", &streamed},
                                {"streamed, next layer prefetched", &prefetched}}) {
    std::printf("  %-34s %10.3f %10.4f\n", name, r->seconds,
                r->seconds / static_cast<double>(layers));
  }
  std::printf("  prefetched / streamed %.2f, prefetched / resident %.2f, outputs %s\n",
              prefetched.seconds / streamed.seconds, prefetched.seconds / resident.seconds,
              same ? "equal bit for bit" : "DIFFER");
  return same ? 0 : 1;
}
