#include "eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "eval/c4_segments.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "tests/testing/golden.h"
#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::eval::EvaluatePerplexity;
using bitsweep::eval::PerplexityOptions;
using Catch::Matchers::Contains;

struct Fixture {
  std::string dir;
  std::unique_ptr<bitsweep::model::Qwen3Model> model;
  std::unique_ptr<bitsweep::model::Tokenizer> tokenizer;
};

Fixture TinyModel(const std::string& name, bool moe = false) {
  Fixture f;
  f.dir = bitsweep::testing::ScratchDir(name);
  bitsweep::model::TinyModelOptions o;
  o.moe = moe;
  o.seed = 21;
  REQUIRE(bitsweep::model::WriteTinyModel(f.dir + "/model", o).ok());
  auto m = bitsweep::model::Qwen3Model::Load(f.dir + "/model");
  REQUIRE(m.ok());
  f.model = std::move(m).value();
  auto t = bitsweep::model::Tokenizer::Load(f.dir + "/model");
  REQUIRE(t.ok());
  f.tokenizer = std::move(t).value();
  return f;
}

std::vector<int32_t> Stream(int64_t n, int64_t vocab) {
  std::vector<int32_t> s(n);
  for (int64_t i = 0; i < n; ++i) s[i] = static_cast<int32_t>((i * 7919 + i / 3) % vocab);
  return s;
}

// exp(mean over windows of the mean next-token loss), straight from the logits in float64.
double DirectPerplexity(const bitsweep::model::Qwen3Model& m, const std::vector<int32_t>& s,
                        int64_t seqlen, int64_t windows) {
  c10::InferenceMode guard;
  double sum = 0;
  for (int64_t w = 0; w < windows; ++w) {
    at::Tensor ids = at::empty({1, seqlen}, at::kLong);
    for (int64_t t = 0; t < seqlen; ++t) ids[0][t] = s[w * seqlen + t];
    at::Tensor logp = at::log_softmax(m.Forward(ids).to(at::kDouble), -1)[0];
    double window = 0;
    for (int64_t t = 0; t + 1 < seqlen; ++t) window -= logp[t][s[w * seqlen + t + 1]].item<double>();
    sum += window / static_cast<double>(seqlen - 1);
  }
  return std::exp(sum / static_cast<double>(windows));
}

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST_CASE("Perplexity follows the GPTQ convention computed directly from logits", "[ppl]") {
  for (bool moe : {false, true}) {
    Fixture f = TinyModel(moe ? "ppl_direct_moe" : "ppl_direct", moe);
    const auto stream = Stream(3 * 40 + 17, f.model->config().vocab_size);
    PerplexityOptions o;
    o.seqlen = 40;
    auto r = EvaluatePerplexity(*f.model, stream, o);
    REQUIRE(r.ok());
    CHECK(r->windows == 3);  // the 17-token tail is dropped
    CHECK(r->tokens == 120);
    CHECK(r->predictions == 117);
    CHECK(r->stream_tokens == 137);
    CHECK(r->ppl == Approx(DirectPerplexity(*f.model, stream, 40, 3)).epsilon(1e-5));
    CHECK(r->nll == Approx(std::log(r->ppl)).epsilon(1e-12));
  }
}

TEST_CASE("Perplexity does not depend on the batch size or the logits chunking", "[ppl]") {
  Fixture f = TinyModel("ppl_batch");
  // 600-token windows cross the 512-token lm_head chunk boundary.
  const auto stream = Stream(4 * 600, f.model->config().vocab_size);
  PerplexityOptions o;
  o.seqlen = 600;
  auto one = EvaluatePerplexity(*f.model, stream, o);
  o.batch_size = 3;
  auto three = EvaluatePerplexity(*f.model, stream, o);
  REQUIRE(one.ok());
  REQUIRE(three.ok());
  CHECK(three->ppl == Approx(one->ppl).epsilon(1e-6));
  CHECK(one->ppl == Approx(DirectPerplexity(*f.model, stream, 600, 4)).epsilon(1e-5));
  o.max_windows = 2;
  auto two = EvaluatePerplexity(*f.model, stream, o);
  REQUIRE(two.ok());
  CHECK(two->windows == 2);
  CHECK(two->ppl == Approx(DirectPerplexity(*f.model, stream, 600, 2)).epsilon(1e-5));
}

TEST_CASE("Perplexity rejects a stream shorter than a window and out-of-vocabulary ids", "[ppl]") {
  Fixture f = TinyModel("ppl_errors");
  PerplexityOptions o;
  o.seqlen = 64;
  auto short_stream = EvaluatePerplexity(*f.model, Stream(63, 100), o);
  REQUIRE_FALSE(short_stream.ok());
  CHECK_THAT(std::string(short_stream.status().message()), Contains("fewer than one window"));
  auto s = Stream(64, 100);
  s[10] = static_cast<int32_t>(f.model->config().vocab_size);
  auto oov = EvaluatePerplexity(*f.model, s, o);
  REQUIRE_FALSE(oov.ok());
  CHECK_THAT(std::string(oov.status().message()), Contains("position 10"));
}

TEST_CASE("WikiText-2 rows are joined with blank lines as HF's wikitext-2-raw-v1 test split",
          "[ppl]") {
  Fixture f = TinyModel("ppl_wikitext");
  const std::string data = f.dir + "/data";
  WriteFile(data + "/wikitext2/wiki.test.raw", " \n = Title = \n \n Body text .\n   \n End\n");
  auto s = bitsweep::eval::WikiText2TestStream(*f.tokenizer, data);
  REQUIRE(s.ok());
  // Rows: "", " = Title = \n", "", " Body text .\n", "", " End\n".
  const std::string joined = "\n\n = Title = \n\n\n\n\n Body text .\n\n\n\n\n End\n";
  CHECK(*s == f.tokenizer->Encode(joined));
  auto missing = bitsweep::eval::WikiText2TestStream(*f.tokenizer, f.dir + "/nowhere");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Contains("wiki.test.raw"));
}

TEST_CASE("C4 on a non-shard file draws GPTQ's random segments exactly as CPython would",
          "[ppl]") {
  Fixture f = TinyModel("ppl_c4_random");
  const std::string data = f.dir + "/data";
  // ASCII documents of varied lengths; the built-in byte-level tokenizer has no merges, so a
  // document's token count is its byte count, and CPython's draw for these lengths is the
  // golden file tests/golden/c4_gptq_draw.txt (written by the script beside it).
  std::vector<std::string> docs;
  std::string jsonl, lengths;
  for (int i = 0; i < 50; ++i) {
    std::string text;
    for (int k = 0; k < (i * 37) % 150 + 5; ++k) text += static_cast<char>('a' + (i + k) % 26);
    docs.push_back(text);
    jsonl += nlohmann::json({{"text", text}, {"url", "u"}}).dump() + "\n";
    lengths += (i ? "," : "") + std::to_string(text.size());
  }
  WriteFile(data + "/c4/small.jsonl", jsonl);
  const int64_t seqlen = 100;
  auto c4 = bitsweep::eval::C4ValidationStream(*f.tokenizer, data, seqlen);
  REQUIRE(c4.ok());
  CHECK(c4->protocol == "gptq-random-segments");
  CHECK(c4->documents == 50);
  REQUIRE(c4->tokens.size() == 256 * seqlen);

  std::istringstream golden(bitsweep::testing::ReadGolden("c4_gptq_draw", 1));
  std::string key, value;
  REQUIRE(golden >> key >> value);
  INFO("the golden file was drawn for other documents: regenerate it with tests/golden/"
       "c4_gptq_draw.py after changing them");
  REQUIRE(key == "lens");
  REQUIRE(value == lengths);
  REQUIRE(golden >> key >> value);
  REQUIRE(key == "seqlen");
  REQUIRE(value == std::to_string(seqlen));
  std::vector<int32_t> expected;
  int doc = 0, off = 0, segments = 0;
  while (golden >> doc >> off) {
    auto ids = f.tokenizer->Encode(docs[doc]);
    expected.insert(expected.end(), ids.begin() + off, ids.begin() + off + seqlen);
    ++segments;
  }
  CHECK(segments == 256);
  CHECK(c4->tokens == expected);
}

TEST_CASE("C4 on the full validation shard uses the study's fixed segments", "[ppl]") {
  Fixture f = TinyModel("ppl_c4_shard");
  const std::string data = f.dir + "/data";
  const int64_t seqlen = 8;
  std::map<int32_t, int32_t> need;  // doc -> bytes needed
  for (const auto& [doc, off] : bitsweep::eval::kStudyC4Segments) {
    need[doc] = std::max(need[doc], off + static_cast<int32_t>(seqlen));
  }
  std::string jsonl;
  std::vector<std::string> docs(bitsweep::eval::kC4ValidationShardDocs, "x");
  for (auto& [doc, n] : need) {
    std::string t;
    for (int k = 0; k < n; ++k) t += static_cast<char>('a' + (doc + k) % 26);
    // The last segment of one document is cut short, as a short Qwen3 tokenisation would be.
    if (doc == 699) t.resize(36 + 3);
    docs[doc] = t;
  }
  for (const auto& d : docs) jsonl += nlohmann::json({{"text", d}}).dump() + "\n";
  WriteFile(data + "/c4/c4-validation.00000-of-00008.json", jsonl);
  auto c4 = bitsweep::eval::C4ValidationStream(*f.tokenizer, data, seqlen);
  REQUIRE(c4.ok());
  CHECK(c4->protocol == "study-segments");
  std::vector<int32_t> expected;
  for (const auto& [doc, off] : bitsweep::eval::kStudyC4Segments) {
    auto ids = f.tokenizer->Encode(docs[doc]);
    const int64_t end = std::min<int64_t>(ids.size(), off + seqlen);
    expected.insert(expected.end(), ids.begin() + off, ids.begin() + end);
  }
  CHECK(c4->tokens == expected);
  CHECK(c4->tokens.size() == 255 * seqlen + 3);
}

TEST_CASE("Malformed C4 files are rejected naming the file and line", "[ppl]") {
  Fixture f = TinyModel("ppl_c4_bad");
  const std::string data = f.dir + "/data";
  WriteFile(data + "/c4/bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n");
  auto r = bitsweep::eval::C4ValidationStream(*f.tokenizer, data, 4);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.status().message()), Contains("bad.jsonl:2"));
  WriteFile(data + "/c4/bad.jsonl", "{\"text\": \"ok\"}\nnot json\n");
  r = bitsweep::eval::C4ValidationStream(*f.tokenizer, data, 4);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.status().message()), Contains("bad.jsonl:2") && Contains("JSON"));
  WriteFile(data + "/c4/bad.jsonl", "{\"text\": \"short\"}\n");
  r = bitsweep::eval::C4ValidationStream(*f.tokenizer, data, 4096);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.status().message()), Contains("no document has more than 4096"));
}

TEST_CASE("The real WikiText-2 and C4 streams tokenize with Qwen3 into full windows",
          "[ppl][data]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = bitsweep::model::Tokenizer::Load(data + "/qwen3_tokenizer");
  REQUIRE(tok.ok());
  auto wiki = bitsweep::eval::WikiText2TestStream(**tok, data);
  REQUIRE(wiki.ok());
  // ~1.29 MB of text; every released Qwen3 evaluation reports about 140 windows of 2048.
  CHECK(wiki->size() / 2048 >= 130);
  CHECK(wiki->size() / 2048 <= 150);
  const std::string head = (*tok)->Decode({wiki->begin(), wiki->begin() + 12}).value();
  CHECK_THAT(head, Catch::Matchers::StartsWith("\n\n = Robert Boulter = \n\n\n\n\n Robert"));
  auto c4 = bitsweep::eval::C4ValidationStream(**tok, data, 2048);
  REQUIRE(c4.ok());
  CHECK(c4->protocol == "gptq-random-segments");
  CHECK(c4->documents == 2000);
  CHECK(c4->tokens.size() == 256 * 2048);
}
