// model/tiny_model.h pulls in ATen, whose glog defines CHECK: include it before Catch2.
#include "model/tiny_model.h"
#include "model/tokenizer.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::model::Tokenizer;
using Catch::Matchers::Contains;
using json = nlohmann::json;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<Tokenizer> LoadJson(const json& j, const std::string& name) {
  const std::string path = bitsweep::testing::ScratchDir(name) + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  auto t = Tokenizer::Load(path);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

std::string ErrorOf(const json& j, const std::string& name) {
  const std::string path = bitsweep::testing::ScratchDir(name) + "/tokenizer.json";
  std::ofstream(path) << j.dump();
  auto t = Tokenizer::Load(path);
  REQUIRE_FALSE(t.ok());
  return std::string(t.status().message());
}

// A byte-level tokenizer with merges h+e, he+l, l+o and " "+w (GPT-2 alphabet: "Ġ" is space).
json SmallTokenizer() {
  return json::parse(bitsweep::model::ByteLevelTokenizerJson(
      {{"h", "e"}, {"he", "l"}, {"l", "o"}, {"Ġ", "w"}, {"Ġw", "o"}}));
}

std::unique_ptr<Tokenizer> Qwen3(const std::string& data) {
  auto t = Tokenizer::Load(data + "/qwen3_tokenizer");
  REQUIRE(t.ok());
  return std::move(t).value();
}

// The text the study tokenises for WikiText-2 (HF rows joined with "\n\n").
std::string WikiText2Text(const std::string& data) {
  const std::string raw = Slurp(data + "/wikitext2/wiki.test.raw");
  std::string text;
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    size_t nl = raw.find('\n', pos);
    size_t end = nl == std::string::npos ? raw.size() : nl + 1;
    std::string line = raw.substr(pos, end - pos);
    if (!first) text += "\n\n";
    first = false;
    if (line.find_first_not_of(" \t\r\n") != std::string::npos) text += line;
    pos = end;
  }
  return text;
}

// Minimal RFC 4180 reader: quoted fields may hold commas, newlines and doubled quotes.
std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  const std::string s = Slurp(path);
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field);
      field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field);
      field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !rows.back().empty()) rows.back().push_back(field);
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

std::string MmluQuestion(const std::vector<std::string>& r, bool with_answer) {
  std::string q = r[0];
  const char* letters = "ABCD";
  for (int k = 0; k < 4; ++k) q += std::string("\n") + letters[k] + ". " + r[k + 1];
  q += "\nAnswer:";
  if (with_answer) q += " " + r[5] + "\n\n";
  return q;
}

// The original Hendrycks 5-shot prompts for the first questions of a few subjects.
std::vector<std::string> MmluPrompts(const std::string& data) {
  std::vector<std::string> prompts;
  for (const std::string subject : {"abstract_algebra", "high_school_european_history",
                                    "college_chemistry", "world_religions", "virology"}) {
    auto dev = ReadCsv(data + "/mmlu/dev/" + subject + "_dev.csv");
    auto test = ReadCsv(data + "/mmlu/test/" + subject + "_test.csv");
    std::string words;
    size_t start = 0;
    while (start <= subject.size()) {
      size_t us = subject.find('_', start);
      if (us == std::string::npos) us = subject.size();
      words += " " + subject.substr(start, us - start);
      start = us + 1;
    }
    std::string header =
        "The following are multiple choice questions (with answers) about" + words + ".\n\n";
    for (size_t t = 0; t < 3 && t < test.size(); ++t) {
      std::string p = header;
      for (size_t d = 0; d < 5 && d < dev.size(); ++d) p += MmluQuestion(dev[d], true);
      p += MmluQuestion(test[t], false);
      prompts.push_back(p);
    }
  }
  return prompts;
}

bool NodeReferenceAvailable() {
  const std::string dir = bitsweep::testing::SourceDir() + "/tools/hf_reference";
  if (std::system("node --version > /dev/null 2>&1") != 0 ||
      !fs::exists(dir + "/node_modules/@huggingface/transformers")) {
    WARN("skipped: the Node.js reference tokenizer is not installed "
         "(run: cd tools/hf_reference && npm ci --ignore-scripts)");
    return false;
  }
  return true;
}

// Ids from transformers.js for each text.
std::vector<std::vector<int32_t>> ReferenceIds(const std::string& tokdir,
                                               const std::vector<std::string>& texts,
                                               const std::string& name) {
  const std::string dir = bitsweep::testing::ScratchDir(name);
  std::ofstream(dir + "/in.json") << json(texts).dump();
  const std::string cmd = "node " + bitsweep::testing::SourceDir() +
                          "/tools/hf_reference/tokenize.mjs " + tokdir + " " + dir +
                          "/in.json > " + dir + "/out.json";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return json::parse(Slurp(dir + "/out.json")).get<std::vector<std::vector<int32_t>>>();
}

void CheckSameIds(const Tokenizer& tok, const std::vector<std::string>& texts,
                  const std::vector<std::vector<int32_t>>& expected) {
  REQUIRE(expected.size() == texts.size());
  size_t ids = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto got = tok.Encode(texts[i]);
    ids += got.size();
    if (got != expected[i]) {
      size_t k = 0;
      while (k < got.size() && k < expected[i].size() && got[k] == expected[i][k]) ++k;
      const size_t from = k >= 5 ? k - 5 : 0;
      std::vector<int32_t> ctx(expected[i].begin() + from,
                               expected[i].begin() + std::min(expected[i].size(), k + 5));
      FAIL("text " << i << ": first difference at token " << k << " of " << expected[i].size()
                   << "; reference around it decodes to \"" << tok.Decode(ctx).value() << "\"");
    }
  }
  INFO("compared " << texts.size() << " texts, " << ids << " ids");
  SUCCEED();
}

}  // namespace

TEST_CASE("BPE applies merges by rank and decodes back to the text", "[tokenizer]") {
  auto tok = LoadJson(SmallTokenizer(), "tok_small");
  const int32_t hel = tok->TokenToId("hel"), lo = tok->TokenToId("lo");
  const int32_t wo = tok->TokenToId("Ġwo");
  REQUIRE(hel >= 256);
  // "hello" -> he, l, l, o -> hel, l, o -> hel, lo (rank order, not longest match).
  CHECK(tok->Encode("hello") == std::vector<int32_t>{hel, lo});
  const auto ids = tok->Encode("hello world");
  CHECK(ids[2] == wo);
  CHECK(tok->Decode(ids).value() == "hello world");
  CHECK(tok->VocabSize() == 256 + 5 + 1);
}

TEST_CASE("Non-ASCII bytes use GPT-2's byte-to-unicode alphabet", "[tokenizer]") {
  auto tok = LoadJson(SmallTokenizer(), "tok_bytes");
  // "é" is bytes C3 A9; Ã = U+00C3 and © = U+00A9 map to themselves.
  CHECK(tok->Encode("é") == std::vector<int32_t>{tok->TokenToId("Ã"), tok->TokenToId("©")});
  // A space is byte 0x20, which maps to U+0120 "Ġ".
  CHECK(tok->Encode(" ") == std::vector<int32_t>{tok->TokenToId("Ġ")});
  for (const std::string s : {"naïve café", "日本語", "\xF0\x9F\x98\x80 emoji", "\t\r\n"}) {
    CHECK(tok->Decode(tok->Encode(s)).value() == s);
  }
}

TEST_CASE("Added tokens are split out before the regex and decode to their content",
          "[tokenizer]") {
  auto tok = LoadJson(SmallTokenizer(), "tok_added");
  const int32_t eot = tok->TokenToId("<|endoftext|>");
  REQUIRE(eot == 261);
  const auto ids = tok->Encode("hello<|endoftext|>hello");
  REQUIRE(ids.size() == 5);
  CHECK(ids[2] == eot);
  CHECK(tok->Decode(ids).value() == "hello<|endoftext|>hello");
  CHECK_FALSE(tok->Decode({999}).ok());
  CHECK_THAT(std::string(tok->Decode({999}).status().message()), Contains("999"));
}

TEST_CASE("NFC normalisation composes decomposed characters before BPE", "[tokenizer]") {
  auto tok = LoadJson(SmallTokenizer(), "tok_nfc");
  CHECK(tok->Encode("e\xCC\x81") == tok->Encode("\xC3\xA9"));  // e + U+0301 == é
  json no_norm = SmallTokenizer();
  no_norm["normalizer"] = nullptr;
  auto raw = LoadJson(no_norm, "tok_nonorm");
  CHECK(raw->Encode("e\xCC\x81").size() == 3);
}

TEST_CASE("Malformed tokenizer.json files are rejected naming the field", "[tokenizer]") {
  json j = SmallTokenizer();
  j.erase("model");
  CHECK_THAT(ErrorOf(j, "tok_bad1"), Contains("model") && Contains("missing"));
  j = SmallTokenizer();
  j["model"]["type"] = "WordPiece";
  CHECK_THAT(ErrorOf(j, "tok_bad2"), Contains("model.type") && Contains("WordPiece"));
  j = SmallTokenizer();
  j["model"]["merges"].push_back({"q", "zz"});
  CHECK_THAT(ErrorOf(j, "tok_bad3"), Contains("model.merges") && Contains("zz"));
  j = SmallTokenizer();
  j["model"]["vocab"]["duplicate"] = 5;
  CHECK_THAT(ErrorOf(j, "tok_bad4"), Contains("id 5 is used twice"));
  j = SmallTokenizer();
  j["normalizer"] = {{"type", "Lowercase"}};
  CHECK_THAT(ErrorOf(j, "tok_bad5"), Contains("normalizer") && Contains("Lowercase"));
  j = SmallTokenizer();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  CHECK_THAT(ErrorOf(j, "tok_bad6"), Contains("pre_tokenizer") && Contains("Whitespace"));
  j = SmallTokenizer();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-z";
  CHECK_THAT(ErrorOf(j, "tok_bad7"), Contains("regex"));
  j = SmallTokenizer();
  j["model"]["vocab"].erase("Ġ");
  CHECK_THAT(ErrorOf(j, "tok_bad8"), Contains("byte 32"));
  const std::string dir = bitsweep::testing::ScratchDir("tok_bad9");
  std::ofstream(dir + "/tokenizer.json") << "{\"model\": ";
  auto t = Tokenizer::Load(dir);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(std::string(t.status().message()), Contains("tokenizer.json") && Contains("JSON"));
  auto missing = Tokenizer::Load(dir + "/nowhere");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Contains("nowhere"));
}

TEST_CASE("Qwen3's tokenizer gives Hugging Face's ids for known strings", "[tokenizer][data]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = Qwen3(data);
  // Ids from transformers.js (tools/hf_reference) for the same strings.
  CHECK(tok->Encode("Hello world, I'M here<|im_end|>  \\n\\n 1234") ==
        std::vector<int32_t>{9707, 1879, 11, 358, 27603, 1588, 151645, 220, 1124, 77, 1699, 220,
                             16, 17, 18, 19});
  CHECK(tok->TokenToId("<|endoftext|>") == 151643);
  CHECK(tok->TokenToId("</think>") == 151668);
  CHECK(tok->VocabSize() == 151669);
  for (const std::string s : {"e\xCC\x81t\xC3\xA9", " = Robert Boulter = \n", "<think>x</think>"}) {
    auto ids = tok->Encode(s);
    CHECK(tok->Decode(ids).value() == (s == "e\xCC\x81t\xC3\xA9" ? "\xC3\xA9t\xC3\xA9" : s));
  }
}

TEST_CASE("Qwen3's tokenizer matches transformers.js on WikiText-2, MMLU prompts and hard "
          "Unicode cases",
          "[tokenizer][data][node]") {
  REQUIRE_SHARED_DATA(data);
  if (!NodeReferenceAvailable()) return;
  auto tok = Qwen3(data);
  std::vector<std::string> texts = {WikiText2Text(data)};
  for (auto& p : MmluPrompts(data)) texts.push_back(p);
  const auto unicode = json::parse(Slurp(bitsweep::testing::SourceDir() +
                                         "/tests/fixtures/unicode_cases.json"))
                           .get<std::vector<std::string>>();
  texts.insert(texts.end(), unicode.begin(), unicode.end());
  CheckSameIds(*tok, texts, ReferenceIds(data + "/qwen3_tokenizer", texts, "tok_node"));
}

TEST_CASE("Tokenizing WikiText-2 with Qwen3 (time reported, not asserted)", "[tokenizer][data]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = Qwen3(data);
  const std::string text = WikiText2Text(data);
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = tok->Encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("WikiText-2 test (" << text.size() << " bytes): " << ids.size() << " tokens in " << s
                           << " s");
  CHECK(ids.size() > 250000);
}
