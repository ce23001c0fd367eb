// Tensor-parallel forward on CPU with Gloo: a model split over 2 and 4 ranks computes what the
// whole model computes.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "eval/perplexity.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "tests/testing/paths.h"
#include "tests/testing/tp_ranks.h"

namespace {

using bitsweep::model::Collective;
using bitsweep::model::LoadOptions;
using bitsweep::model::Qwen3Model;
using bitsweep::model::TinyModelOptions;
using bitsweep::testing::RunRanks;

// Shapes every TP size up to 4 divides, an untied lm_head and a vocabulary (262) that 4 does
// not divide, so the padded vocabulary shard is exercised.
TinyModelOptions TpOptions(bool moe) {
  TinyModelOptions o;
  o.moe = moe;
  o.seed = moe ? 11 : 7;
  o.num_heads = 8;
  o.num_kv_heads = 4;
  o.head_dim = 16;
  o.hidden_size = 64;
  o.intermediate_size = 128;
  o.moe_intermediate_size = 32;
  o.tie_word_embeddings = false;
  o.vocab_size = 262;
  return o;
}

double MaxRelDiff(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

at::Tensor RandomIds(int64_t rows, int64_t len, int64_t vocab, uint64_t seed) {
  at::manual_seed(seed);
  return at::randint(vocab, {rows, len}, at::kLong);
}

TEST_CASE("A model split over 2 and 4 ranks gives the logits of the whole model", "[tp]") {
  for (bool moe : {false, true}) {
    const TinyModelOptions o = TpOptions(moe);
    const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
    const auto weights = bitsweep::model::RandomQwen3Weights(config, o.seed);
    const at::Tensor ids = RandomIds(2, 24, config.vocab_size, 3);
    c10::InferenceMode guard;
    auto whole = Qwen3Model::FromTensors(config, weights);
    REQUIRE(whole.ok());
    const at::Tensor expected = (*whole)->Forward(ids);
    for (int world : {2, 4}) {
      INFO((moe ? "MoE" : "dense") << ", TP=" << world);
      auto logits = RunRanks(world, [&](int, std::shared_ptr<const Collective> tp) {
        c10::InferenceMode g;
        LoadOptions lo;
        lo.tp = tp;
        auto m = Qwen3Model::FromTensors(config, weights, lo);
        if (!m.ok()) throw std::runtime_error(m.status().ToString());
        return (*m)->Forward(ids);
      });
      for (int r = 0; r < world; ++r) {
        REQUIRE(logits[r].sizes().equals(expected.sizes()));
        CHECK(MaxRelDiff(logits[r], expected) < 1e-5);
        // Every rank holds the same logits: the all-reduce is bitwise identical across ranks.
        CHECK(at::equal(logits[r], logits[0]));
      }
    }
  }
}

TEST_CASE("Each rank holds only its shard: heads, MLP columns and the vocabulary", "[tp]") {
  const TinyModelOptions o = TpOptions(true);
  const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  const auto weights = bitsweep::model::RandomQwen3Weights(config, o.seed);
  auto shapes = RunRanks(4, [&](int rank, std::shared_ptr<const Collective> tp) {
    LoadOptions lo;
    lo.tp = tp;
    auto m = Qwen3Model::FromTensors(config, weights, lo);
    if (!m.ok()) throw std::runtime_error(m.status().ToString());
    auto& l = (*m)->layer(1);
    const auto& full_q = weights.at("model.layers.1.self_attn.q_proj.weight");
    const bool q_rows = at::equal(l.q_proj.weight(), full_q.narrow(0, rank * 32, 32));
    return std::vector<int64_t>{l.q_proj.out_features(),
                                l.k_proj.out_features(),
                                l.o_proj.in_features(),
                                l.moe->experts[0].up_proj.out_features(),
                                l.moe->experts[0].down_proj.in_features(),
                                l.moe->gate.out_features(),
                                q_rows ? 1 : 0,
                                static_cast<int64_t>((*m)->GlobalTensors().back().second.size(0))};
  });
  for (const auto& s : shapes) {
    // 8 query heads and 4 KV heads of 16 over 4 ranks; MoE width 32; router whole; 262 rows
    // of lm_head in shards of ceil(262 / 4) = 66.
    CHECK(s == std::vector<int64_t>{32, 16, 32, 8, 8, 8, 1, 66});
  }
}

TEST_CASE("Tensor-parallel perplexity equals the whole model's to 6 significant digits", "[tp]") {
  const TinyModelOptions o = TpOptions(false);
  const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  const auto weights = bitsweep::model::RandomQwen3Weights(config, o.seed);
  std::vector<int32_t> stream(4 * 32 + 5);
  for (size_t i = 0; i < stream.size(); ++i) {
    stream[i] = static_cast<int32_t>((i * 7919 + 13) % config.vocab_size);
  }
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 32;
  po.batch_size = 2;
  auto whole = Qwen3Model::FromTensors(config, weights);
  REQUIRE(whole.ok());
  auto expected = bitsweep::eval::EvaluatePerplexity(**whole, stream, po);
  REQUIRE(expected.ok());
  auto ppl = RunRanks(2, [&](int, std::shared_ptr<const Collective> tp) {
    LoadOptions lo;
    lo.tp = tp;
    auto m = Qwen3Model::FromTensors(config, weights, lo);
    if (!m.ok()) throw std::runtime_error(m.status().ToString());
    auto r = bitsweep::eval::EvaluatePerplexity(**m, stream, po);
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return r->ppl;
  });
  for (double p : ppl) {
    CHECK(std::abs(p - expected->ppl) / expected->ppl < 5e-7);
  }
}

TEST_CASE("Ranks load their shards from a sharded bf16 checkpoint folder", "[tp]") {
  TinyModelOptions o = TpOptions(false);
  o.dtype = "bf16";
  o.max_shard_bytes = 20000;  // several safetensors files and an index
  o.tie_word_embeddings = true;
  const std::string dir = bitsweep::testing::ScratchDir("tp_checkpoint");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  c10::InferenceMode guard;
  auto whole = Qwen3Model::Load(dir);
  REQUIRE(whole.ok());
  const at::Tensor ids = RandomIds(1, 16, (*whole)->config().vocab_size, 5);
  const at::Tensor expected = (*whole)->Forward(ids);
  for (bool lazy : {false, true}) {
    auto logits = RunRanks(2, [&](int, std::shared_ptr<const Collective> tp) {
      c10::InferenceMode g;
      LoadOptions lo;
      lo.tp = tp;
      lo.lazy_layers = lazy;
      auto m = Qwen3Model::Load(dir, lo);
      if (!m.ok()) throw std::runtime_error(m.status().ToString());
      for (int64_t i = 0; i < (*m)->num_layers(); ++i) {
        if (!(*m)->MaterializeLayer(i).ok()) throw std::runtime_error("materialize");
      }
      return (*m)->Forward(ids);
    });
    for (const auto& l : logits) CHECK(MaxRelDiff(l, expected) < 1e-5);
  }
}

TEST_CASE("A tensor-parallel size that does not divide the KV heads is rejected naming them",
          "[tp]") {
  TinyModelOptions o = TpOptions(false);
  o.num_heads = 6;
  o.num_kv_heads = 3;
  const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  bitsweep::Status s = bitsweep::model::ValidateTensorParallel(config, 2);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(std::string(s.message()), Catch::Contains("num_attention_heads = 6") ||
                                           Catch::Contains("num_key_value_heads = 3"));
  o.num_heads = 8;
  o.num_kv_heads = 2;
  const auto gqa = bitsweep::model::TinyConfig(o, o.vocab_size);
  bitsweep::Status kv = bitsweep::model::ValidateTensorParallel(gqa, 4);
  REQUIRE_FALSE(kv.ok());
  CHECK_THAT(std::string(kv.message()), Catch::Contains("num_key_value_heads = 2"));
  CHECK_THAT(std::string(kv.message()), Catch::Contains("not replicated"));
  CHECK(bitsweep::model::ValidateTensorParallel(gqa, 2).ok());
}

}  // namespace
