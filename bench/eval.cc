// bench/eval: requests per second of the log-likelihood engine on PIQA-sized and MMLU-sized
// requests, one request per forward vs batched vs batched with prefix reuse, in one run, printed
// with their ratios to one-at-a-time.
//
// Model: Qwen3-0.6B's layer shapes (hidden 1024, 16 query / 8 KV heads of 128, MLP 3072), the
// real 151936-entry vocabulary (tied lm_head), a few layers, random weights.
// Workloads (random token ids of the sizes the real tasks have with the Qwen3 tokenizer):
//   PIQA-sized: a ~25-token question context, 2 choices of ~25 tokens each;
//   MMLU-sized: one subject: a ~560-token 5-shot header shared by every question, a ~90-token
//               question, 4 one-token continuations (the letters).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "bench/shapes.h"
#include "eval/loglikelihood.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"

namespace {

using bitsweep::eval::LoglikelihoodOptions;
using bitsweep::eval::LoglikelihoodRequest;

std::vector<int32_t> Tokens(std::mt19937& rng, int64_t mean, int64_t vocab) {
  std::uniform_int_distribution<int64_t> len(mean * 3 / 4, mean * 5 / 4);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> v(len(rng));
  for (auto& t : v) t = tok(rng);
  return v;
}

std::vector<LoglikelihoodRequest> Piqa(int64_t questions, int64_t vocab) {
  std::mt19937 rng(1);
  std::vector<LoglikelihoodRequest> r;
  for (int64_t q = 0; q < questions; ++q) {
    const auto ctx = Tokens(rng, 25, vocab);
    for (int c = 0; c < 2; ++c) r.push_back({ctx, Tokens(rng, 25, vocab)});
  }
  return r;
}

std::vector<LoglikelihoodRequest> Mmlu(int64_t questions, int64_t vocab) {
  std::mt19937 rng(2);
  const auto header = Tokens(rng, 560, vocab);
  std::vector<LoglikelihoodRequest> r;
  for (int64_t q = 0; q < questions; ++q) {
    auto ctx = header;
    const auto question = Tokens(rng, 90, vocab);
    ctx.insert(ctx.end(), question.begin(), question.end());
    for (int32_t letter : {32, 33, 34, 35}) r.push_back({ctx, {letter}});
  }
  return r;
}

struct Mode {
  const char* name;
  bool reuse;
  int64_t batch;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t layers = 2, vocab = 151936, piqa_questions = 32, mmlu_questions = 16;
  CLI::App app{"Log-likelihood engine: requests/s without and with batching and prefix reuse"};
  app.add_option("--layers", layers, "Decoder layers")->capture_default_str();
  app.add_option("--vocab", vocab, "Vocabulary size")->capture_default_str();
  app.add_option("--piqa-questions", piqa_questions)->capture_default_str();
  app.add_option("--mmlu-questions", mmlu_questions)->capture_default_str();
  bitsweep::model::RuntimeOptions ro;
  app.add_option("--threads", ro.threads, "Intra-op threads (0 = all)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  bitsweep::model::ConfigureRuntime(ro);

  bitsweep::model::TinyModelOptions o = bitsweep::bench::Qwen3LayerShapes("0.6b", layers);
  auto config = bitsweep::model::TinyConfig(o, vocab);
  config.max_position_embeddings = 40960;
  auto model = bitsweep::model::Qwen3Model::FromTensors(
      config, bitsweep::model::RandomQwen3Weights(config, 0), {});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  std::printf("model: Qwen3-0.6B layer shapes, %lld layers, vocab %lld, fp32, %d threads\n",
              static_cast<long long>(layers), static_cast<long long>(vocab), at::get_num_threads());

  const Mode modes[] = {{"one request per forward", false, 1},
                        {"batched (16 rows)", false, 16},
                        {"batched + prefix reuse", true, 16}};
  struct Workload {
    const char* name;
    std::vector<LoglikelihoodRequest> requests;
  };
  const Workload workloads[] = {{"PIQA-sized", Piqa(piqa_questions, vocab)},
                                {"MMLU-sized", Mmlu(mmlu_questions, vocab)}};
  // Warm-up (allocator, thread pool).
  (void)bitsweep::eval::ScoreLoglikelihood(**model, Piqa(2, vocab), {});

  for (const Workload& w : workloads) {
    std::printf("\n%s: %zu requests\n", w.name, w.requests.size());
    std::printf("  %-26s %10s %12s %12s %8s\n", "mode", "req/s", "tokens run", "seconds", "ratio");
    double base = 0;
    std::vector<double> first;
    for (const Mode& m : modes) {
      LoglikelihoodOptions lo;
      lo.prefix_reuse = m.reuse;
      lo.batch_size = m.batch;
      auto run = bitsweep::eval::ScoreLoglikelihood(**model, w.requests, lo);
      if (!run.ok()) {
        std::fprintf(stderr, "%s\n", run.status().ToString().c_str());
        return 1;
      }
      // Same numbers in every mode (to float tolerance).
      double max_diff = 0;
      if (first.empty()) {
        for (const auto& r : run->results) first.push_back(r.logprob);
      } else {
        for (size_t i = 0; i < first.size(); ++i) {
          max_diff = std::max(
              max_diff, std::abs(first[i] - run->results[i].logprob) / (1 + std::abs(first[i])));
        }
      }
      const double rps = static_cast<double>(w.requests.size()) / run->seconds;
      if (base == 0) base = rps;
      std::printf("  %-26s %10.2f %12lld %12.2f %7.2fx  (max rel diff %.1e)\n", m.name, rps,
                  static_cast<long long>(run->tokens), run->seconds, rps / base, max_diff);
    }
  }
  return 0;
}
