// CUDA against CPU on the same inputs: the forward and perplexity (fp32, 1e-4 relative), every
// quantizer's codes (equal, or fewer than 0.5% of entries off: a rounding tie that fp32
// reductions in another order push across a code boundary), the NCCL collective at world
// size 1, and a layer-streamed model prefetching through pinned staging on a side stream
// against the resident model on the same GPU (ppl to 1e-9 relative). Tag [cuda];
// scripts/gpu-check runs them. Without a visible GPU each case WARNs "SKIPPED" (Catch2 v2 has
// no SKIP) and gpu-check treats that as a failure.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "common/process.h"
#include "eval/perplexity.h"
#include "model/collective_nccl.h"
#include "model/cuda_info.h"
#include "model/device.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/awq.h"
#include "quant/billm.h"
#include "quant/gptq.h"
#include "quant/grid.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"
#include "tests/testing/paths.h"

namespace {

namespace model = bitsweep::model;
namespace quant = bitsweep::quant;

const c10::Device kCuda(c10::kCUDA, 0);

bool HaveGpu() {
  if (model::VisibleCudaDevices() > 0) return true;
  WARN("SKIPPED: no CUDA device visible (this build "
       << (model::CudaCompiledIn() ? "has CUDA" : "has no CUDA") << ")");
  return false;
}

// max |a - b| / max |b|, on the CPU in fp64.
double RelDiff(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).abs().max().item<double>() / std::max(y.abs().max().item<double>(), 1e-30);
}

// Fraction of entries that differ.
double Mismatch(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU), y = b.to(at::kCPU);
  REQUIRE(x.sizes() == y.sizes());
  return x.ne(y).sum().item<double>() / static_cast<double>(std::max<int64_t>(x.numel(), 1));
}

constexpr double kCodesOff = 0.005;  // fraction of codes allowed to differ (rounding ties)

std::string Checkpoint(const std::string& name, bool moe) {
  const std::string dir = bitsweep::testing::ScratchDir(name) + "/model";
  model::TinyModelOptions o;
  o.moe = moe;
  o.seed = 11;
  o.dtype = "f32";
  o.num_layers = 2;
  REQUIRE(model::WriteTinyModel(dir, o).ok());
  return dir;
}

std::unique_ptr<model::Qwen3Model> Load(const std::string& dir, c10::Device device) {
  model::LoadOptions lo;
  lo.device = device;
  auto m = model::Qwen3Model::Load(dir, lo);
  REQUIRE(m.ok());
  return std::move(m).value();
}

// GPTQ's Hessian 2/N X^T X of `tokens` random activations (computed once, on the CPU).
at::Tensor Hessian(int64_t in, int64_t tokens, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor x = at::randn({tokens, in});
  return x.t().matmul(x).mul_(2.0 / static_cast<double>(tokens));
}

at::Tensor Weight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({out, in}) * 0.02;
}

TEST_CASE("CUDA: the forward matches the CPU's in fp32", "[cuda]") {
  if (!HaveGpu()) return;
  for (const bool moe : {false, true}) {
    INFO("moe " << moe);
    const std::string dir = Checkpoint(moe ? "cuda-fwd-moe" : "cuda-fwd", moe);
    auto cpu = Load(dir, c10::Device(c10::kCPU));
    auto gpu = Load(dir, kCuda);
    c10::InferenceMode guard;
    const at::Tensor ids = at::randint(0, cpu->config().vocab_size, {2, 33}, at::kLong);
    const at::Tensor want = cpu->Forward(ids);
    const at::Tensor got = gpu->Forward(ids);
    CHECK(got.device().is_cuda());
    CHECK(RelDiff(got, want) <= 1e-4);
  }
}

TEST_CASE("CUDA: perplexity matches the CPU's in fp32", "[cuda]") {
  if (!HaveGpu()) return;
  const std::string dir = Checkpoint("cuda-ppl", false);
  auto cpu = Load(dir, c10::Device(c10::kCPU));
  auto gpu = Load(dir, kCuda);
  std::vector<int32_t> stream(4 * 64 + 1);
  for (size_t i = 0; i < stream.size(); ++i) {
    stream[i] = static_cast<int32_t>((i * 7919 + 13) % cpu->config().vocab_size);
  }
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 64;
  po.batch_size = 2;
  auto want = bitsweep::eval::EvaluatePerplexity(*cpu, stream, po);
  auto got = bitsweep::eval::EvaluatePerplexity(*gpu, stream, po);
  REQUIRE(want.ok());
  REQUIRE(got.ok());
  CHECK(got->windows == want->windows);
  CHECK(std::abs(got->ppl - want->ppl) <= 1e-4 * want->ppl);
}

TEST_CASE("CUDA: a streamed model that prefetches layers through pinned staging scores as the "
          "resident one",
          "[cuda]") {
  if (!HaveGpu()) return;
  for (const bool moe : {false, true}) {
    INFO("moe " << moe);
    const std::string dir =
        bitsweep::testing::ScratchDir(moe ? "cuda-prefetch-moe" : "cuda-prefetch") + "/model";
    model::TinyModelOptions o;
    o.moe = moe;
    o.seed = 13;
    o.dtype = "bf16";  // converted to fp32 on the GPU after the copy
    o.num_layers = 4;
    REQUIRE(model::WriteTinyModel(dir, o).ok());
    auto resident = Load(dir, kCuda);
    model::LoadOptions lo;
    lo.device = kCuda;
    lo.lazy_layers = lo.lazy_globals = lo.prefetch_layers = true;
    auto loaded = model::Qwen3Model::Load(dir, lo);
    REQUIRE(loaded.ok());
    auto& streamed = *loaded;
    c10::InferenceMode guard;
    const at::Tensor ids = at::randint(0, resident->config().vocab_size, {2, 40}, at::kLong);
    const at::Tensor want = resident->ForwardHidden(ids);
    for (int pass = 0; pass < 2; ++pass) {
      std::vector<at::Tensor> hidden = {streamed->Embed(ids)};
      REQUIRE(streamed->RunLayers(hidden, {streamed->MakeRope(40)}).ok());
      const at::Tensor got = streamed->FinalNorm(hidden[0]);
      CHECK(got.device().is_cuda());
      CHECK(RelDiff(got, want) <= 1e-6);
    }
    std::vector<int32_t> stream(6 * 32 + 1);
    for (size_t i = 0; i < stream.size(); ++i) {
      stream[i] = static_cast<int32_t>((i * 7919 + 13) % resident->config().vocab_size);
    }
    bitsweep::eval::PerplexityOptions po;
    po.seqlen = 32;
    po.batch_size = 2;
    po.stream_group_bytes = 2 * 32 * resident->config().hidden_size * 4;  // a batch a group
    auto a = bitsweep::eval::EvaluatePerplexity(*resident, stream, po);
    auto b = bitsweep::eval::EvaluatePerplexity(*streamed, stream, po);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(std::abs(a->ppl - b->ppl) <= 1e-9 * a->ppl);
  }
}

TEST_CASE("CUDA: RTN codes match the CPU's", "[cuda]") {
  if (!HaveGpu()) return;
  const at::Tensor w = Weight(256, 512, 1);
  for (const int64_t group : {int64_t{-1}, int64_t{128}}) {
    INFO("group " << group);
    quant::QuantGrid grid;
    grid.bits = 4;
    grid.group_size = group;
    auto want = quant::RtnQuantize(w, grid);
    auto got = quant::RtnQuantize(w.to(kCuda), grid);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    CHECK(Mismatch(got->codes, want->codes) < kCodesOff);
    CHECK(RelDiff(got->scales, want->scales) <= 1e-5);
  }
}

TEST_CASE("CUDA: GPTQ codes match the CPU's", "[cuda]") {
  if (!HaveGpu()) return;
  const at::Tensor w = Weight(256, 512, 2);
  const at::Tensor h = Hessian(512, 2048, 3);
  for (const bool act_order : {false, true}) {
    INFO("act_order " << act_order);
    quant::GptqOptions o;
    o.grid.bits = 4;
    o.grid.group_size = 128;
    o.act_order = act_order;
    auto want = quant::GptqQuantize(w, h, o);
    auto got = quant::GptqQuantize(w.to(kCuda), h.to(kCuda), o);
    REQUIRE(want.ok());
    REQUIRE(got.ok());
    // GPTQ propagates each column's error into the next: one code flipped by a rounding tie
    // moves the following ones, hence the 0.5% allowance rather than equality.
    CHECK(Mismatch(got->weight.codes, want->weight.codes) < kCodesOff);
    CHECK(Mismatch(got->weight.g_idx, want->weight.g_idx) == 0);
    CHECK(std::abs(got->loss - want->loss) <= 1e-3 * std::max(want->loss, 1e-12));
  }
}

TEST_CASE("CUDA: the Hessian accumulates on the device of its inputs", "[cuda]") {
  if (!HaveGpu()) return;
  at::manual_seed(4);
  const at::Tensor x = at::randn({3, 64, 256});
  quant::HessianAccumulator cpu(256), gpu(256);
  cpu.Add(x, 3);
  gpu.Add(x.to(kCuda), 3);
  CHECK(gpu.H().device().is_cuda());
  CHECK(RelDiff(gpu.H(), cpu.H()) <= 1e-5);
}

TEST_CASE("CUDA: AWQ's clip search chooses the CPU's bounds", "[cuda]") {
  if (!HaveGpu()) return;
  const at::Tensor w = Weight(128, 256, 5);
  at::manual_seed(6);
  const at::Tensor x = at::randn({512, 256});
  quant::QuantGrid grid;
  grid.bits = 4;
  grid.group_size = 128;
  grid.kind = quant::GridKind::kMinMax;
  quant::AwqOptions o;
  auto want = quant::AwqSearchClip(w, x, grid, o);
  auto got = quant::AwqSearchClip(w.to(kCuda), x.to(kCuda), grid, o);
  REQUIRE(want.ok());
  REQUIRE(got.ok());
  CHECK(Mismatch(got->steps, want->steps) < kCodesOff);
}

TEST_CASE("CUDA: SmoothQuant's scales and W codes match the CPU's", "[cuda]") {
  if (!HaveGpu()) return;
  const at::Tensor w = Weight(128, 256, 7);
  at::manual_seed(8);
  const at::Tensor act_max = at::rand({256}) * 10;
  const at::Tensor w_max = w.abs().amax(0);
  const at::Tensor s_cpu = quant::SmoothingScales(act_max, w_max, 0.5);
  const at::Tensor s_gpu = quant::SmoothingScales(act_max.to(kCuda), w_max.to(kCuda), 0.5);
  CHECK(RelDiff(s_gpu, s_cpu) <= 1e-5);
  quant::QuantGrid grid;
  grid.bits = 8;
  grid.kind = quant::GridKind::kSymAbsMax;
  const at::Tensor ws = w * s_cpu;
  const auto p_cpu = quant::FindParams(ws, grid);
  const auto p_gpu = quant::FindParams(ws.to(kCuda), grid);
  CHECK(Mismatch(quant::QuantizeCodes(ws.to(kCuda), p_gpu, grid),
                 quant::QuantizeCodes(ws, p_cpu, grid)) < kCodesOff);
}

TEST_CASE("CUDA: BiLLM's regions and binarised weight match the CPU's", "[cuda]") {
  if (!HaveGpu()) return;
  const at::Tensor w = Weight(128, 256, 9);
  const at::Tensor h = Hessian(256, 1024, 10);
  quant::BillmOptions o;
  auto want = quant::BillmQuantize(w, h, o);
  auto got = quant::BillmQuantize(w.to(kCuda), h.to(kCuda), o);
  REQUIRE(want.ok());
  REQUIRE(got.ok());
  CHECK(Mismatch(got->region, want->region) < kCodesOff);
  CHECK(RelDiff(got->weight, want->weight) <= 1e-2);
}

TEST_CASE("CUDA: the NCCL collective at world size 1 is the identity", "[cuda]") {
  if (!HaveGpu()) return;
  REQUIRE(model::NcclAvailable());
  model::Rendezvous r;
  r.host = "127.0.0.1";
  r.port = bitsweep::FreePort();
  r.rank = 0;
  r.world_size = 1;
  auto tp = model::ConnectNccl(r, 0);
  REQUIRE(tp.ok());
  at::Tensor t = at::arange(12, at::TensorOptions().dtype(at::kFloat).device(kCuda));
  const at::Tensor before = t.clone();
  (*tp)->AllReduceSum(t);
  CHECK(RelDiff(t, before) == 0);
  (*tp)->AllReduceMax(t);
  CHECK(RelDiff(t, before) == 0);
  const at::Tensor g = (*tp)->AllGather(t.reshape({3, 4}), 1);
  CHECK(g.sizes() == at::IntArrayRef({3, 4}));
  at::Tensor b = t.clone();
  (*tp)->Broadcast(b, 0);
  CHECK(RelDiff(b, before) == 0);
  (*tp)->Barrier();
}

}  // namespace
