#include "eval/loglikelihood.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <random>

#include "model/qwen3.h"
#include "model/tiny_model.h"

namespace {

using bitsweep::eval::LoglikelihoodOptions;
using bitsweep::eval::LoglikelihoodRequest;
using bitsweep::eval::LoglikelihoodResult;
using bitsweep::eval::ScoreLoglikelihood;
using bitsweep::model::Qwen3Model;

// A tiny random model whose weights are scaled up so its predictions are peaked (well
// separated log-probabilities, so argmax decisions are not float-noise ties).
std::unique_ptr<Qwen3Model> PeakedModel(
    bool moe, bitsweep::model::ComputeDType dtype = bitsweep::model::ComputeDType::kFloat32) {
  bitsweep::model::TinyModelOptions o;
  o.moe = moe;
  o.seed = 5;
  auto config = bitsweep::model::TinyConfig(o, 320);
  config.max_position_embeddings = 512;
  auto w = bitsweep::model::RandomQwen3Weights(config, 17);
  for (auto& [name, t] : w) {
    if (name.find("norm") == std::string::npos) t = t * 6.0;
  }
  bitsweep::model::LoadOptions lo;
  lo.dtype = dtype;
  auto m = Qwen3Model::FromTensors(config, w, lo);
  REQUIRE(m.ok());
  return std::move(m).value();
}

std::vector<int32_t> RandomTokens(std::mt19937& rng, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> v(n);
  for (auto& t : v) t = tok(rng);
  return v;
}

// Questions with several choices each (shared contexts), a shared few-shot header across some
// questions, duplicates and a request that is a prefix of another one.
std::vector<LoglikelihoodRequest> MixedRequests(int64_t vocab) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> len(1, 9);
  std::vector<LoglikelihoodRequest> reqs;
  const std::vector<int32_t> header = RandomTokens(rng, 23, vocab);
  for (int q = 0; q < 9; ++q) {
    std::vector<int32_t> ctx = RandomTokens(rng, 3 + 5 * q % 17, vocab);
    if (q % 2 == 0) ctx.insert(ctx.begin(), header.begin(), header.end());
    const int n_choices = 2 + q % 3;
    for (int c = 0; c < n_choices; ++c) reqs.push_back({ctx, RandomTokens(rng, len(rng), vocab)});
  }
  reqs.push_back(reqs[3]);                                       // duplicate
  reqs.push_back({reqs[0].context, {reqs[0].continuation[0]}});  // prefix of request 0
  reqs.push_back({{7}, {8, 9, 10}});                             // one-token context
  return reqs;
}

// Scores one request straight from Forward over its own tokens, in double.
LoglikelihoodResult Direct(const Qwen3Model& m, const LoglikelihoodRequest& r, int64_t max_len) {
  c10::InferenceMode guard;
  std::vector<int32_t> whole = r.context;
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  if (static_cast<int64_t>(whole.size()) > max_len + 1) {
    whole.erase(whole.begin(), whole.end() - (max_len + 1));
  }
  std::vector<int64_t> in(whole.begin(), whole.end() - 1);
  at::Tensor ids = at::tensor(in, at::kLong).unsqueeze(0);
  at::Tensor lp = at::log_softmax(m.Forward(ids)[0].to(at::kDouble), -1);
  LoglikelihoodResult out{0.0, true};
  const int64_t n = static_cast<int64_t>(r.continuation.size());
  const int64_t first = static_cast<int64_t>(in.size()) - n;
  for (int64_t k = 0; k < n; ++k) {
    out.logprob += lp[first + k][r.continuation[k]].item<double>();
    out.greedy = out.greedy && lp[first + k].argmax().item<int64_t>() == r.continuation[k];
  }
  return out;
}

void RequireSame(const std::vector<LoglikelihoodResult>& a,
                 const std::vector<LoglikelihoodResult>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("request " << i << ": " << a[i].logprob << " vs " << b[i].logprob);
    REQUIRE(std::abs(a[i].logprob - b[i].logprob) <= tol * (1 + std::abs(b[i].logprob)));
    REQUIRE(a[i].greedy == b[i].greedy);
  }
}

}  // namespace

TEST_CASE("Batched, prefix-reused scoring equals scoring each request alone", "[eval]") {
  for (bool moe : {false, true}) {
    INFO("moe " << moe);
    auto m = PeakedModel(moe);
    const auto reqs = MixedRequests(m->config().vocab_size);
    std::vector<LoglikelihoodResult> direct;
    for (const auto& r : reqs) direct.push_back(Direct(*m, r, 512));

    LoglikelihoodOptions alone;
    alone.prefix_reuse = false;
    alone.batch_size = 1;
    auto one = ScoreLoglikelihood(*m, reqs, alone);
    REQUIRE(one.ok());
    RequireSame(one->results, direct, 1e-5);

    LoglikelihoodOptions batched = alone;
    batched.batch_size = 16;
    auto b = ScoreLoglikelihood(*m, reqs, batched);
    REQUIRE(b.ok());
    RequireSame(b->results, one->results, 1e-5);
    CHECK(b->forwards < one->forwards);

    LoglikelihoodOptions reuse;  // defaults: prefix reuse, batched
    auto r = ScoreLoglikelihood(*m, reqs, reuse);
    REQUIRE(r.ok());
    RequireSame(r->results, one->results, 1e-5);
    // Shared contexts are computed once: far fewer tokens than one row per request.
    CHECK(r->tokens < b->tokens * 2 / 3);

    // Small rows force the prefix trees to be split across rows and batches.
    LoglikelihoodOptions split = reuse;
    split.max_row_tokens = 40;
    split.batch_size = 3;
    auto s = ScoreLoglikelihood(*m, reqs, split);
    REQUIRE(s.ok());
    CHECK(s->rows > r->rows);
    RequireSame(s->results, one->results, 1e-5);
  }
}

TEST_CASE("Prefix reuse in bf16 matches one row per request to bf16 tolerance", "[eval]") {
  auto m = PeakedModel(false, bitsweep::model::ComputeDType::kBFloat16);
  const auto reqs = MixedRequests(m->config().vocab_size);
  LoglikelihoodOptions plain;
  plain.prefix_reuse = false;
  plain.batch_size = 1;
  auto a = ScoreLoglikelihood(*m, reqs, plain);
  auto b = ScoreLoglikelihood(*m, reqs, LoglikelihoodOptions{});
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO("request " << i << " plain " << a->results[i].logprob << " reuse " << b->results[i].logprob);
    CHECK(std::abs(a->results[i].logprob - b->results[i].logprob) <=
          0.05 * (1 + std::abs(a->results[i].logprob)));
  }
}

TEST_CASE("Inputs longer than the context limit keep their last tokens, as lm-eval truncates",
          "[eval]") {
  auto m = PeakedModel(false);
  std::mt19937 rng(3);
  std::vector<LoglikelihoodRequest> reqs = {
      {RandomTokens(rng, 50, m->config().vocab_size), RandomTokens(rng, 4, m->config().vocab_size)},
      {RandomTokens(rng, 10, m->config().vocab_size),
       RandomTokens(rng, 3, m->config().vocab_size)}};
  for (bool reuse : {false, true}) {
    LoglikelihoodOptions o;
    o.max_length = 20;
    o.prefix_reuse = reuse;
    auto r = ScoreLoglikelihood(*m, reqs, o);
    REQUIRE(r.ok());
    RequireSame(r->results, {Direct(*m, reqs[0], 20), Direct(*m, reqs[1], 20)}, 1e-5);
  }
}

TEST_CASE("Bad log-likelihood requests are rejected naming the request", "[eval]") {
  auto m = PeakedModel(false);
  const int32_t vocab = static_cast<int32_t>(m->config().vocab_size);
  auto r = ScoreLoglikelihood(*m, {{{1, 2}, {3}}, {{1}, {}}}, {});
  REQUIRE(!r.ok());
  CHECK_THAT(std::string(r.status().message()),
             Catch::Matchers::Contains("request 1 has an empty continuation"));
  r = ScoreLoglikelihood(*m, {{{1, vocab}, {3}}}, {});
  REQUIRE(!r.ok());
  CHECK_THAT(std::string(r.status().message()),
             Catch::Matchers::Contains("outside the vocabulary"));
  LoglikelihoodOptions o;
  o.max_length = 4;
  r = ScoreLoglikelihood(*m, {{{1}, {1, 2, 3, 4, 5}}}, o);
  REQUIRE(!r.ok());
  CHECK_THAT(std::string(r.status().message()),
             Catch::Matchers::Contains("exceeds the context limit"));
}
