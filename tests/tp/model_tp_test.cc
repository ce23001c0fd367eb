// Tensor-parallel forward on CPU with Gloo: a model split over 2 and 4 ranks computes what the
// whole model computes.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "eval/loglikelihood.h"
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

// This rank's shard of the model (run on a RunRanks thread: throws instead of asserting).
std::unique_ptr<Qwen3Model> RankModel(const bitsweep::model::Qwen3Config& config,
                                      const std::map<std::string, at::Tensor>& weights,
                                      std::shared_ptr<const Collective> tp) {
  LoadOptions lo;
  lo.tp = std::move(tp);
  auto m = Qwen3Model::FromTensors(config, weights, lo);
  if (!m.ok()) throw std::runtime_error(m.status().ToString());
  return std::move(m).value();
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
        auto m = RankModel(config, weights, tp);
        return m->Forward(ids);
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
    auto m = RankModel(config, weights, tp);
    auto& l = m->layer(1);
    const auto& full_q = weights.at("model.layers.1.self_attn.q_proj.weight");
    const bool q_rows = at::equal(l.q_proj.weight(), full_q.narrow(0, rank * 32, 32));
    return std::vector<int64_t>{l.q_proj.out_features(),
                                l.k_proj.out_features(),
                                l.o_proj.in_features(),
                                l.moe->experts[0].up_proj.out_features(),
                                l.moe->experts[0].down_proj.in_features(),
                                l.moe->gate.out_features(),
                                q_rows ? 1 : 0,
                                static_cast<int64_t>(m->GlobalTensors().back().second.size(0))};
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
    auto m = RankModel(config, weights, tp);
    auto r = bitsweep::eval::EvaluatePerplexity(*m, stream, po);
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    return r->ppl;
  });
  for (double p : ppl) {
    CHECK(std::abs(p - expected->ppl) / expected->ppl < 5e-7);
  }
}

TEST_CASE(
    "Vocabulary-parallel scores equal the whole vocabulary's: logsumexp, target logits and the "
    "first argmax across shards",
    "[tp]") {
  const TinyModelOptions o = TpOptions(false);
  const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  auto weights = bitsweep::model::RandomQwen3Weights(config, o.seed);
  // Rows 5 (first shard) and 200 (last shard at TP 2 and 4) of lm_head share a large entry in
  // column 3, and hidden row 0 is that column alone: the two logits are the largest and tie
  // exactly in any summation order, and argmax must say 5.
  at::Tensor head = weights.at("lm_head.weight").clone();
  head[5][3] = 10.0;
  head[200][3] = 10.0;
  weights["lm_head.weight"] = head;
  at::manual_seed(5);
  at::Tensor normed = at::randn({6, config.hidden_size});
  normed[0].zero_();
  normed[0][3] = 5.0;
  // Targets in every shard, the padding edge (261) and a row read twice.
  const at::Tensor rows = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 5, 0}, at::kLong);
  const at::Tensor targets =
      at::tensor(std::vector<int64_t>{5, 0, 65, 66, 197, 198, 261, 200}, at::kLong);
  c10::InferenceMode guard;
  auto whole = Qwen3Model::FromTensors(config, weights);
  REQUIRE(whole.ok());
  const at::Tensor logits = (*whole)->LmHead(normed).to(at::kFloat);
  const at::Tensor lse = at::logsumexp(logits, -1);
  const at::Tensor target_logit = logits.index({rows, targets});
  const at::Tensor argmax = logits.argmax(-1);
  REQUIRE(logits[0][5].item<float>() == logits[0][200].item<float>());
  REQUIRE(argmax[0].item<int64_t>() == 5);
  auto single = (*whole)->ScoreTokens(normed, rows, targets);
  CHECK(at::equal(single.logsumexp, lse));
  CHECK(at::equal(single.target_logit, target_logit));
  CHECK(at::equal(single.argmax, argmax));
  for (int world : {2, 4}) {
    INFO("TP=" << world);
    auto scores = RunRanks(world, [&](int, std::shared_ptr<const Collective> tp) {
      c10::InferenceMode g;
      auto m = RankModel(config, weights, tp);
      return m->ScoreTokens(normed, rows, targets);
    });
    for (const auto& sc : scores) {
      // A shard's matmul may round differently from the whole one's.
      CHECK(MaxRelDiff(sc.logsumexp, lse) < 1e-6);
      CHECK(MaxRelDiff(sc.target_logit, target_logit) < 1e-6);
      CHECK(at::equal(sc.argmax, argmax));
      CHECK(at::equal(sc.logsumexp, scores[0].logsumexp));
    }
  }
}

TEST_CASE("Tensor-parallel log-likelihood scores equal the whole model's", "[tp]") {
  const TinyModelOptions o = TpOptions(true);
  const auto config = bitsweep::model::TinyConfig(o, o.vocab_size);
  const auto weights = bitsweep::model::RandomQwen3Weights(config, o.seed);
  // Requests sharing contexts (prefix reuse), one-token continuations, one long continuation.
  std::vector<bitsweep::eval::LoglikelihoodRequest> requests;
  for (int q = 0; q < 4; ++q) {
    std::vector<int32_t> context;
    for (int i = 0; i < 6 + 3 * q; ++i) context.push_back((q * 31 + i * 17 + 3) % 262);
    for (int c = 0; c < 3; ++c) {
      std::vector<int32_t> continuation;
      for (int i = 0; i <= (c == 2 ? 5 : 0); ++i)
        continuation.push_back((q * 7 + c * 59 + i) % 262);
      requests.push_back({context, continuation});
    }
  }
  bitsweep::eval::LoglikelihoodOptions lo_opts;
  lo_opts.batch_size = 4;
  auto whole = Qwen3Model::FromTensors(config, weights);
  REQUIRE(whole.ok());
  auto expected = bitsweep::eval::ScoreLoglikelihood(**whole, requests, lo_opts);
  REQUIRE(expected.ok());
  for (int world : {2, 4}) {
    INFO("TP=" << world);
    auto runs = RunRanks(world, [&](int, std::shared_ptr<const Collective> tp) {
      auto m = RankModel(config, weights, tp);
      auto r = bitsweep::eval::ScoreLoglikelihood(*m, requests, lo_opts);
      if (!r.ok()) throw std::runtime_error(r.status().ToString());
      return r->results;
    });
    for (const auto& results : runs) {
      REQUIRE(results.size() == expected->results.size());
      for (size_t i = 0; i < results.size(); ++i) {
        INFO("request " << i);
        const double want = expected->results[i].logprob;
        CHECK(std::abs(results[i].logprob - want) <= 1e-5 * (1 + std::abs(want)));
        CHECK(results[i].greedy == expected->results[i].greedy);
      }
    }
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
