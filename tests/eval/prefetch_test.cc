// LoadOptions::prefetch_layers: a streamed model reads layer i + 1 on a loader thread while
// layer i runs (on CUDA through pinned staging and a side stream; here on the CPU, the same
// bookkeeping without the copies). It must change nothing but the timing: the same numbers bit
// for bit as the resident model, every layer read once per pass and in order, and a layer that
// cannot be read still fails the run with its name. tests/cuda/parity_test.cc runs the CUDA path.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "eval/perplexity.h"
#include "model/memory_plan.h"
#include "model/qwen3.h"
#include "model/released.h"
#include "model/safetensors.h"
#include "model/tiny_model.h"
#include "tests/testing/paths.h"

namespace {

using bitsweep::model::ComputeDType;
using bitsweep::model::LoadOptions;
using bitsweep::model::Qwen3Model;
using Catch::Matchers::Contains;

std::string Checkpoint(const std::string& name, const std::string& dtype, bool moe) {
  const std::string dir = bitsweep::testing::ScratchDir(name) + "/model";
  bitsweep::model::TinyModelOptions o;
  o.moe = moe;
  o.seed = 9;
  o.dtype = dtype;
  o.num_layers = 4;
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  return dir;
}

std::unique_ptr<Qwen3Model> Load(const std::string& dir, bool streamed, bool prefetch) {
  LoadOptions lo;
  lo.lazy_layers = lo.lazy_globals = streamed;
  lo.prefetch_layers = prefetch;
  auto m = Qwen3Model::Load(dir, lo);
  REQUIRE(m.ok());
  return std::move(m).value();
}

bool SameBits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes().equals(b.sizes()) && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

TEST_CASE("Prefetching the next layer gives the resident hidden states bit for bit and reads "
          "each layer once per pass, in order",
          "[streamed][prefetch]") {
  for (const bool moe : {false, true}) {
    for (const char* stored : {"bf16", "f32"}) {
      INFO("moe " << moe << ", stored " << stored);
      const std::string dir =
          Checkpoint(std::string("prefetch-") + stored + (moe ? "-moe" : ""), stored, moe);
      auto resident = Load(dir, false, false);
      auto prefetched = Load(dir, true, true);
      std::vector<int64_t> reads;
      prefetched->AddLayerSetup([&](int64_t i, bitsweep::model::DecoderLayer&) {
        reads.push_back(i);
      });
      c10::InferenceMode guard;
      const at::Tensor ids = at::randint(0, resident->config().vocab_size, {2, 11}, at::kLong);
      const at::Tensor want = resident->ForwardHidden(ids);
      for (int pass = 0; pass < 2; ++pass) {
        INFO("pass " << pass);
        reads.clear();
        std::vector<at::Tensor> hidden = {prefetched->Embed(ids), prefetched->Embed(ids)};
        const auto rope = prefetched->MakeRope(11);
        REQUIRE(prefetched->RunLayers(hidden, {rope, rope}).ok());
        CHECK(SameBits(prefetched->FinalNorm(hidden[0]), want));
        CHECK(SameBits(prefetched->FinalNorm(hidden[1]), want));
        CHECK(reads == std::vector<int64_t>{0, 1, 2, 3});
        for (int64_t i = 0; i < prefetched->num_layers(); ++i) {
          CHECK_FALSE(prefetched->layer_loaded(i));
        }
      }
    }
  }
}

TEST_CASE("Prefetched perplexity equals resident perplexity exactly over several groups",
          "[streamed][prefetch][ppl]") {
  const std::string dir = Checkpoint("prefetch-ppl", "bf16", false);
  auto resident = Load(dir, false, false);
  std::vector<int32_t> stream(16 * 7 + 3);
  for (size_t i = 0; i < stream.size(); ++i) {
    stream[i] = static_cast<int32_t>((i * 7919 + 13) % resident->config().vocab_size);
  }
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 16;
  po.batch_size = 2;
  auto want = bitsweep::eval::EvaluatePerplexity(*resident, stream, po);
  REQUIRE(want.ok());
  auto prefetched = Load(dir, true, true);
  po.stream_group_bytes = 2 * 16 * prefetched->config().hidden_size * 4;  // a batch a group
  auto got = bitsweep::eval::EvaluatePerplexity(*prefetched, stream, po);
  REQUIRE(got.ok());
  CHECK(got->nll == want->nll);
  CHECK(got->ppl == want->ppl);
  CHECK(got->windows == 7);
}

TEST_CASE("A layer that cannot be read while it is prefetched fails the run naming its tensor, "
          "and the layers before it still ran",
          "[streamed][prefetch]") {
  const std::string dir = Checkpoint("prefetch-bad", "f32", false);
  {
    // Rewrite the checkpoint with layer 2's down_proj cut to the wrong width.
    auto ck = bitsweep::model::Checkpoint::Open(dir);
    REQUIRE(ck.ok());
    auto mapped = (*ck)->LoadPrefix("");
    REQUIRE(mapped.ok());
    std::map<std::string, at::Tensor> tensors;
    for (const auto& [name, t] : *mapped) tensors[name] = t.clone();
    const std::string bad = "model.layers.2.mlp.down_proj.weight";
    REQUIRE(tensors.count(bad) == 1);
    tensors[bad] = tensors[bad].narrow(1, 0, 3).contiguous();
    ck->reset();
    mapped->clear();
    REQUIRE(bitsweep::model::WriteCheckpoint(
                dir, std::vector<std::pair<std::string, at::Tensor>>(tensors.begin(),
                                                                     tensors.end()))
                .ok());
  }
  auto prefetched = Load(dir, true, true);
  std::vector<int64_t> reads;
  prefetched->AddLayerSetup([&](int64_t i, bitsweep::model::DecoderLayer&) { reads.push_back(i); });
  c10::InferenceMode guard;
  const at::Tensor ids = at::randint(0, prefetched->config().vocab_size, {1, 5}, at::kLong);
  for (int pass = 0; pass < 2; ++pass) {
    INFO("pass " << pass);
    reads.clear();
    std::vector<at::Tensor> hidden = {prefetched->Embed(ids)};
    const auto status = prefetched->RunLayers(hidden, {prefetched->MakeRope(5)});
    REQUIRE_FALSE(status.ok());
    CHECK_THAT(std::string(status.message()), Contains("model.layers.2.mlp.down_proj.weight"));
    CHECK_THAT(std::string(status.message()), Contains(dir));
    CHECK(reads == std::vector<int64_t>{0, 1});
  }
}

TEST_CASE("The memory plan prefetches on CUDA only when two layers and scoring fit",
          "[streamed][prefetch]") {
  const auto c = *bitsweep::model::ReleasedQwen3Config("Qwen3-8B");
  const int64_t layer = bitsweep::model::LayerBytes(c, 0, ComputeDType::kBFloat16);
  auto probe = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 1, int64_t{1} << 40,
                                                "test");
  REQUIRE(probe.ok());
  const int64_t scoring = probe->scoring_bytes;
  const int64_t two = 2 * layer + scoring;
  auto cpu = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 1, two, "test");
  REQUIRE(cpu.ok());
  CHECK(cpu->streamed);
  CHECK_FALSE(cpu->prefetch);
  auto gpu = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 1, two, "test", true);
  REQUIRE(gpu.ok());
  CHECK(gpu->prefetch);
  CHECK(gpu->activation_bytes == 0);
  CHECK_THAT(gpu->reason, Contains("copy the next layer while one runs"));
  auto tight = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 1, two - 1, "test",
                                                true);
  REQUIRE(tight.ok());
  CHECK(tight->streamed);
  CHECK_FALSE(tight->prefetch);
  CHECK(tight->activation_bytes == two - 1 - layer - scoring);
  CHECK_THAT(tight->reason, Contains("two layers do not"));
}

}  // namespace
