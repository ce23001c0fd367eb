// model/ and tools/ headers first: ATen's glog defines CHECK, which Catch2 must redefine.
// clang-format off
#include "eval/perplexity.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "tools/bpe_trainer.h"
#include "tools/corpus.h"
#include "tools/trainer.h"

#include <catch2/catch.hpp>
// clang-format on
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tests/testing/paths.h"

namespace {

// models/demo's perplexity on its WikiText-2-layout held-out text (seqlen 256, 4 windows) is
// 5.40 (higher than the trainer's held-out 2.42 because the WikiText protocol joins rows with
// blank lines the training text never has); the bound leaves room for BLAS differences across
// machines while still failing on any real regression (an undertrained model is far above).
constexpr double kDemoMaxPerplexity = 7.0;

using bitsweep::tools::CorpusOptions;
using bitsweep::tools::GenerateCorpus;

std::unique_ptr<bitsweep::model::Tokenizer> TokenizerFor(const std::string& text, int merges,
                                                         const std::string& dir) {
  const std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << bitsweep::model::ByteLevelTokenizerJson(
      bitsweep::tools::LearnBpeMerges(text, merges));
  auto t = bitsweep::model::Tokenizer::Load(path);
  REQUIRE(t.ok());
  return std::move(t).value();
}

}  // namespace

TEST_CASE("The synthetic corpus is deterministic per seed and differs across seeds", "[tools]") {
  CorpusOptions a;
  a.seed = 7;
  a.bytes = 20000;
  CorpusOptions b = a;
  b.seed = 8;
  const std::string x = GenerateCorpus(a);
  CHECK(x == GenerateCorpus(a));
  CHECK(x != GenerateCorpus(b));
  CHECK(x.size() >= 20000);
  CHECK(x.rfind(" \n = ", 0) == 0);  // WikiText-style heading first
  const auto docs = bitsweep::tools::GenerateDocuments(3, 5, 1000);
  REQUIRE(docs.size() == 5);
  for (const auto& d : docs) CHECK(d.size() >= 1000);
}

TEST_CASE("Learned BPE merges give a lossless tokenizer that compresses the corpus", "[tools]") {
  CorpusOptions o;
  o.bytes = 50000;
  const std::string text = GenerateCorpus(o);
  auto tok = TokenizerFor(text, 200, bitsweep::testing::ScratchDir("tools_bpe"));
  CHECK(tok->VocabSize() > 256 + 150);
  CorpusOptions other = o;
  other.seed = 99;
  const std::string unseen = GenerateCorpus(other);
  const auto ids = tok->Encode(unseen);
  CHECK(tok->Decode(ids).value() == unseen);
  CHECK(ids.size() * 3 < unseen.size());  // at least 3 bytes per token on in-domain text
}

TEST_CASE("Training reduces held-out loss and the saved folder evaluates consistently",
          "[tools][slow]") {
  bitsweep::model::ConfigureRuntime();
  const std::string dir = bitsweep::testing::ScratchDir("tools_train");
  CorpusOptions o;
  o.bytes = 120000;
  const std::string text = GenerateCorpus(o);
  auto tok = TokenizerFor(text, 100, dir);
  const auto ids = tok->Encode(text);
  // Held-out: 16 windows of 65 tokens right after the training part, which the trainer
  // evaluates all of (eval_windows = 16), as EvaluatePerplexity with seqlen 65 does.
  const size_t cut = ids.size() * 9 / 10;
  REQUIRE(ids.size() - cut >= 16 * 65);
  const std::vector<int32_t> train(ids.begin(), ids.begin() + cut),
      held(ids.begin() + cut, ids.begin() + cut + 16 * 65);
  bitsweep::tools::TrainOptions t;
  t.shape.hidden_size = 64;
  t.shape.intermediate_size = 128;
  t.shape.num_layers = 2;
  t.shape.num_heads = 2;
  t.shape.num_kv_heads = 1;
  t.shape.head_dim = 32;
  t.seqlen = 64;
  t.batch = 8;
  t.steps = 60;
  t.warmup = 5;
  t.eval_every = 10;
  t.eval_windows = 16;
  t.stored_dtype = "f32";
  const int64_t vocab = (tok->VocabSize() + 63) / 64 * 64;
  auto r = bitsweep::tools::TrainQwen3(train, held, vocab, t, dir + "/model");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const double first = r->history.front().heldout_loss, last = r->final_heldout_loss;
  INFO("held-out loss " << first << " -> " << last << " (uniform: " << std::log(vocab) << ")");
  CHECK(last < first - 1.0);
  CHECK(last < std::log(static_cast<double>(vocab)) - 2.0);

  std::ofstream(dir + "/model/tokenizer.json")
      << bitsweep::model::ByteLevelTokenizerJson(bitsweep::tools::LearnBpeMerges(text, 100));
  auto m = bitsweep::model::Qwen3Model::Load(dir + "/model");
  REQUIRE(m.ok());
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 65;  // the trainer scores windows of seqlen + 1 tokens
  po.batch_size = 4;
  auto p = bitsweep::eval::EvaluatePerplexity(**m, held, po);
  REQUIRE(p.ok());
  CHECK(p->windows == 16);
  // The same windows and the same fp32 weights: equal up to summation order.
  CHECK(p->nll == Approx(last).epsilon(1e-4));
}

TEST_CASE("The shipped demo model is well trained on its held-out text", "[tools][demo]") {
  const std::string dir = bitsweep::testing::SourceDir() + "/models/demo";
  auto m = bitsweep::model::Qwen3Model::Load(dir);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  auto tok = bitsweep::model::Tokenizer::Load(dir);
  REQUIRE(tok.ok());
  auto stream = bitsweep::eval::WikiText2TestStream(**tok, dir + "/heldout");
  REQUIRE(stream.ok());
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 256;
  po.max_windows = 4;
  auto p = bitsweep::eval::EvaluatePerplexity(**m, *stream, po);
  REQUIRE(p.ok());
  // Unigram baseline: the entropy of the held-out token distribution itself.
  std::vector<double> counts((*tok)->VocabSize(), 0.0);
  for (int32_t id : *stream) counts[id] += 1;
  double entropy = 0;
  for (double c : counts) {
    if (c > 0) entropy -= c / stream->size() * std::log(c / stream->size());
  }
  INFO("demo model ppl " << p->ppl << ", unigram ppl " << std::exp(entropy));
  CHECK(p->ppl < kDemoMaxPerplexity);
  CHECK(p->ppl * 5 < std::exp(entropy));
}
