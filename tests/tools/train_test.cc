// model/ and tools/ headers first: ATen's glog defines CHECK, which Catch2 must redefine.
#include "eval/perplexity.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "tools/bpe_trainer.h"
#include "tools/corpus.h"
#include "tools/trainer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "tests/testing/paths.h"

namespace {

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
  const size_t cut = ids.size() * 9 / 10;
  const std::vector<int32_t> train(ids.begin(), ids.begin() + cut), held(ids.begin() + cut, ids.end());
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
  t.eval_windows = 8;
  t.stored_dtype = "f32";
  const int64_t vocab = (tok->VocabSize() + 63) / 64 * 64;
  auto r = bitsweep::tools::TrainQwen3(train, held, vocab, t, dir + "/model");
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const double first = r->history.front().heldout_loss, last = r->final_heldout_loss;
  INFO("held-out loss " << first << " -> " << last << " (uniform: " << std::log(vocab) << ")");
  CHECK(last < first - 1.0);
  CHECK(last < std::log(static_cast<double>(vocab)) - 2.0);

  std::ofstream(dir + "/model/tokenizer.json") << bitsweep::model::ByteLevelTokenizerJson(
      bitsweep::tools::LearnBpeMerges(text, 100));
  auto m = bitsweep::model::Qwen3Model::Load(dir + "/model");
  REQUIRE(m.ok());
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 65;  // the trainer scores windows of seqlen + 1 tokens
  auto p = bitsweep::eval::EvaluatePerplexity(**m, held, po);
  REQUIRE(p.ok());
  // Different windows of the same held-out text: close, not equal.
  CHECK(std::log(p->ppl) == Approx(last).epsilon(0.15));
}
