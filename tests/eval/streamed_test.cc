// Layer-streamed evaluation (LoadOptions::lazy_layers + lazy_globals, Qwen3Model::RunLayers)
// against the resident model: the same numbers bit for bit, since each batch sees exactly the
// same operations; and the memory plan that chooses between them.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cstring>

#include "eval/loglikelihood.h"
#include "eval/perplexity.h"
#include "model/memory_plan.h"
#include "model/qwen3.h"
#include "model/qwen3_config.h"
#include "model/released.h"
#include "model/tiny_model.h"
#include "quant/load.h"
#include "quant/smoothquant.h"
#include "tests/testing/paths.h"

namespace {

using bitsweep::model::ComputeDType;
using bitsweep::model::LoadOptions;
using bitsweep::model::Qwen3Model;
using Catch::Matchers::Contains;

// A tiny checkpoint stored in bf16 (so fp32 evaluation converts) or fp32, dense or MoE, with an
// untied lm_head when asked.
std::string Checkpoint(const std::string& name, const std::string& dtype, bool moe, bool tied) {
  const std::string dir = bitsweep::testing::ScratchDir(name) + "/model";
  bitsweep::model::TinyModelOptions o;
  o.moe = moe;
  o.seed = 5;
  o.dtype = dtype;
  o.num_layers = 3;
  o.tie_word_embeddings = tied;
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  return dir;
}

std::unique_ptr<Qwen3Model> LoadModel(const std::string& dir, bool streamed,
                                      ComputeDType dtype = ComputeDType::kFloat32) {
  LoadOptions lo;
  lo.dtype = dtype;
  lo.lazy_layers = lo.lazy_globals = streamed;
  auto m = Qwen3Model::Load(dir, lo);
  REQUIRE(m.ok());
  return std::move(m).value();
}

std::vector<int32_t> Stream(int64_t n, int64_t vocab) {
  std::vector<int32_t> s(n);
  for (int64_t i = 0; i < n; ++i) s[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);
  return s;
}

bool SameBits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes().equals(b.sizes()) && a.scalar_type() == b.scalar_type() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

TEST_CASE("A layer-streamed model scores tokens bit for bit as the resident one",
          "[streamed]") {
  for (const bool moe : {false, true}) {
    for (const bool tied : {true, false}) {
      for (const char* stored : {"bf16", "f32"}) {
        INFO("moe " << moe << ", tied " << tied << ", stored " << stored);
        const std::string dir = Checkpoint(
            std::string("streamed-score-") + stored + (moe ? "-moe" : "") + (tied ? "" : "-untied"),
            stored, moe, tied);
        auto resident = LoadModel(dir, false);
        auto streamed = LoadModel(dir, true);
        REQUIRE(streamed->lazy());
        REQUIRE_FALSE(streamed->layer_loaded(0));
        c10::InferenceMode guard;
        const at::Tensor ids = at::randint(0, resident->config().vocab_size, {2, 9}, at::kLong);
        const at::Tensor want = resident->ForwardHidden(ids);
        std::vector<at::Tensor> hidden = {streamed->Embed(ids)};
        REQUIRE(streamed->RunLayers(hidden, {streamed->MakeRope(9)}).ok());
        const at::Tensor got = streamed->FinalNorm(hidden[0]);
        CHECK(SameBits(got, want));
        // Every layer it read was dropped again.
        for (int64_t i = 0; i < streamed->num_layers(); ++i) CHECK_FALSE(streamed->layer_loaded(i));
        // lm_head converted chunk by chunk gives the same logits and scores.
        const at::Tensor normed = want.reshape({18, -1});
        const at::Tensor rows = at::arange(18, at::kLong);
        const at::Tensor targets = ids.reshape({18});
        const auto a = resident->ScoreTokens(normed, rows, targets);
        const auto b = streamed->ScoreTokens(normed, rows, targets);
        CHECK(SameBits(a.logsumexp, b.logsumexp));
        CHECK(SameBits(a.argmax, b.argmax));
        CHECK(SameBits(a.target_logit, b.target_logit));
        CHECK(SameBits(resident->LmHead(normed), streamed->LmHead(normed)));
        // The globals come back in the compute dtype whatever they are stored as.
        for (const auto& [name, t] : streamed->GlobalTensors()) {
          CHECK(t.scalar_type() == at::kFloat);
        }
      }
    }
  }
}

TEST_CASE("Streamed perplexity equals resident perplexity exactly, whatever the grouping",
          "[streamed][ppl]") {
  const std::string dir = Checkpoint("streamed-ppl", "bf16", false, true);
  auto resident = LoadModel(dir, false);
  const std::vector<int32_t> stream = Stream(16 * 10 + 5, resident->config().vocab_size);
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 16;
  po.batch_size = 2;
  auto want = bitsweep::eval::EvaluatePerplexity(*resident, stream, po);
  REQUIRE(want.ok());
  auto streamed = LoadModel(dir, true);
  const int64_t window = 16 * streamed->config().hidden_size * 4;
  // One batch per group, three batches per group, and every window in one group.
  for (const int64_t group_bytes : {int64_t{0}, 6 * window, 100 * window}) {
    po.stream_group_bytes = group_bytes;
    std::vector<int64_t> seen;
    po.progress = [&](int64_t done, int64_t) { seen.push_back(done); };
    auto got = bitsweep::eval::EvaluatePerplexity(*streamed, stream, po);
    REQUIRE(got.ok());
    CHECK(got->nll == want->nll);
    CHECK(got->ppl == want->ppl);
    CHECK(got->windows == 10);
    CHECK(seen.back() == 10);
  }
}

TEST_CASE("Streamed log-likelihoods equal resident ones exactly, with and without prefix reuse",
          "[streamed]") {
  const std::string dir = Checkpoint("streamed-ll", "bf16", true, false);
  auto resident = LoadModel(dir, false);
  auto streamed = LoadModel(dir, true);
  const int64_t V = resident->config().vocab_size;
  std::vector<bitsweep::eval::LoglikelihoodRequest> requests;
  for (int r = 0; r < 23; ++r) {
    bitsweep::eval::LoglikelihoodRequest q;
    // Shared prefixes (r % 3) so the prefix tree packs several requests into a row.
    for (int i = 0; i < 5 + r % 3 * 4; ++i) q.context.push_back((i * 31 + r % 3 * 7) % V);
    for (int i = 0; i <= r % 4; ++i) q.continuation.push_back((r * 17 + i * 5) % V);
    requests.push_back(q);
  }
  for (const bool reuse : {true, false}) {
    bitsweep::eval::LoglikelihoodOptions o;
    o.batch_size = 4;
    o.prefix_reuse = reuse;
    auto want = bitsweep::eval::ScoreLoglikelihood(*resident, requests, o);
    REQUIRE(want.ok());
    for (const int64_t group_bytes : {int64_t{0}, int64_t{1} << 14, int64_t{1} << 30}) {
      INFO("prefix reuse " << reuse << ", group bytes " << group_bytes);
      o.stream_group_bytes = group_bytes;
      auto got = bitsweep::eval::ScoreLoglikelihood(*streamed, requests, o);
      REQUIRE(got.ok());
      REQUIRE(got->results.size() == want->results.size());
      for (size_t r = 0; r < requests.size(); ++r) {
        CHECK(got->results[r].logprob == want->results[r].logprob);
        CHECK(got->results[r].greedy == want->results[r].greedy);
      }
      CHECK(got->forwards == want->forwards);
      CHECK(got->padded_tokens == want->padded_tokens);
    }
  }
}

TEST_CASE("SmoothQuant's activation hooks survive a streamed model re-reading its layers",
          "[streamed]") {
  const std::string dir = Checkpoint("streamed-sq", "f32", false, true);
  auto resident = LoadModel(dir, false);
  auto streamed = LoadModel(dir, true);
  REQUIRE(bitsweep::quant::InstallActivationQuantization(*resident, 4, true).ok());
  REQUIRE(bitsweep::quant::InstallActivationQuantization(*streamed, 4, true).ok());
  const std::vector<int32_t> stream = Stream(16 * 3, resident->config().vocab_size);
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 16;
  auto a = bitsweep::eval::EvaluatePerplexity(*resident, stream, po);
  auto b = bitsweep::eval::EvaluatePerplexity(*streamed, stream, po);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->nll == b->nll);
  // And the hooks change the result (4-bit activations), so the check above means something.
  auto plain = LoadModel(dir, false);
  auto c = bitsweep::eval::EvaluatePerplexity(*plain, stream, po);
  REQUIRE(c.ok());
  CHECK(c->nll != a->nll);
}

TEST_CASE("The memory plan keeps a model resident when it fits and streams it when not",
          "[streamed]") {
  const auto c = *bitsweep::model::ReleasedQwen3Config("Qwen3-8B");
  // Qwen3-8B: 8.19e9 parameters; one layer 4096 x (4096 + 1024 + 1024 + 4096) + 3 x 4096 x 12288.
  const int64_t layer = (4096LL * (4096 + 1024 + 1024 + 4096) + 3LL * 4096 * 12288 + 2 * 4096 +
                         2 * 128) * 4;
  CHECK(bitsweep::model::LayerBytes(c, 0, ComputeDType::kFloat32) == layer);
  CHECK(bitsweep::model::ModelBytes(c, ComputeDType::kBFloat16) ==
        (2LL * 151936 * 4096 + 4096) * 2 + 36 * layer / 2);
  const int64_t gib = int64_t{1} << 30;
  auto big = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 1, 64 * gib, "test");
  REQUIRE(big.ok());
  CHECK_FALSE(big->streamed);
  CHECK_THAT(big->reason, Contains("resident"));
  auto small = bitsweep::model::PlanModelMemory(c, ComputeDType::kFloat32, 1, 4 * gib, "test");
  REQUIRE(small.ok());
  CHECK(small->streamed);
  CHECK(small->activation_bytes == 4 * gib - layer - small->scoring_bytes);
  CHECK_THAT(small->reason, Contains("streamed"));
  // Under TP each rank holds a share.
  auto tp = bitsweep::model::PlanModelMemory(c, ComputeDType::kBFloat16, 2, 9 * gib, "test");
  REQUIRE(tp.ok());
  CHECK_FALSE(tp->streamed);
  // Too small for one layer: the error names the layer and its size.
  auto tiny = bitsweep::model::PlanModelMemory(c, ComputeDType::kFloat32, 1, 512 << 20,
                                               "--max-memory");
  REQUIRE_FALSE(tiny.ok());
  CHECK_THAT(std::string(tiny.status().message()),
             Contains("--max-memory 512 MiB is too small: one decoder layer (layer 0: 736 MiB"));
}

TEST_CASE("LoadModelForEval loads streamed under a small budget and reports why", "[streamed]") {
  const std::string dir = Checkpoint("streamed-load", "bf16", true, false);
  auto config = bitsweep::model::LoadQwen3Config(dir);
  REQUIRE(config.ok());
  const int64_t whole = bitsweep::model::ModelBytes(*config, ComputeDType::kFloat32);
  const int64_t layer = bitsweep::model::LayerBytes(*config, 0, ComputeDType::kFloat32);
  auto plan = bitsweep::model::PlanModelMemory(*config, ComputeDType::kFloat32, 1,
                                               int64_t{1} << 40, "--max-memory");
  REQUIRE(plan.ok());
  const int64_t scoring = plan->scoring_bytes;
  auto resident = bitsweep::quant::LoadModelForEval(dir, {}, whole + scoring);
  REQUIRE(resident.ok());
  CHECK_FALSE(resident->memory->streamed);
  CHECK_FALSE(resident->model->lazy());
  auto streamed = bitsweep::quant::LoadModelForEval(dir, {}, layer + scoring + 1);
  REQUIRE(streamed.ok());
  CHECK(streamed->memory->streamed);
  CHECK(streamed->model->lazy());
  CHECK(bitsweep::quant::MemoryPlanJson(*streamed->memory).find("\"mode\":\"streamed\"") !=
        std::string::npos);
  auto none = bitsweep::quant::LoadModelForEval(dir, {}, layer / 2);
  REQUIRE_FALSE(none.ok());
  CHECK_THAT(std::string(none.status().message()), Contains("is too small: one decoder layer"));
  // No plan asked for: loaded as the options say (resident).
  auto plain = bitsweep::quant::LoadModelForEval(dir);
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->memory.has_value());
}

}  // namespace
