// The real Qwen3 tokenizer on the study's data, and cross-checks against tokenizers we did not
// write (tools/hf_reference, Node.js).
#include "model/tokenizer.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "tests/model/tokenizer_testing.h"
#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::model::Tokenizer;
using Catch::Matchers::Contains;
using json = nlohmann::json;
using bitsweep::model::tokenizer_test::Ids;
using bitsweep::model::tokenizer_test::LoadJson;
using bitsweep::model::tokenizer_test::Nfc;
using bitsweep::model::tokenizer_test::Printable;
using bitsweep::model::tokenizer_test::RandomUtf8;
using bitsweep::model::tokenizer_test::Slurp;
using bitsweep::model::tokenizer_test::TinyTokenizer;
using bitsweep::model::tokenizer_test::Utf8;
using bitsweep::model::tokenizer_test::WriteTokenizer;

std::unique_ptr<Tokenizer> Qwen3(const std::string& data) {
  auto t = Tokenizer::Load(data + "/qwen3_tokenizer");
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

// The text the study tokenises for WikiText-2: Hugging Face's rows (the lines with their "\n",
// whitespace-only lines as "") joined with "\n\n".
std::string WikiText2Text(const std::string& data) {
  const std::string raw = Slurp(data + "/wikitext2/wiki.test.raw");
  std::string text;
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    const size_t nl = raw.find('\n', pos);
    const size_t end = nl == std::string::npos ? raw.size() : nl + 1;
    const std::string line = raw.substr(pos, end - pos);
    if (!first) text += "\n\n";
    first = false;
    if (line.find_first_not_of(" \t\r\n") != std::string::npos) text += line;
    pos = end;
  }
  return text;
}

// RFC 4180: quoted fields may hold commas, newlines and doubled quotes.
std::vector<std::vector<std::string>> ReadCsv(const std::string& path) {
  const std::string s = Slurp(path);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    any = true;
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
      row.push_back(std::move(field));
      field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else {
      field += c;
    }
  }
  if (any) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string MmluExample(const std::vector<std::string>& r, bool with_answer) {
  std::string q = r[0];
  const char* letters = "ABCD";
  for (int k = 0; k < 4; ++k) q += std::string("\n") + letters[k] + ". " + r[k + 1];
  q += "\nAnswer:";
  if (with_answer) q += " " + r[5] + "\n\n";
  return q;
}

// Hendrycks' 5-shot prompts (the original evaluate.py) for the first questions of a few
// subjects. format_subject gives " abstract algebra", hence the two spaces after "about".
std::vector<std::string> MmluPrompts(const std::string& data) {
  std::vector<std::string> prompts;
  for (const std::string subject :
       {"abstract_algebra", "high_school_european_history", "college_chemistry", "world_religions",
        "virology", "high_school_computer_science"}) {
    const auto dev = ReadCsv(data + "/mmlu/dev/" + subject + "_dev.csv");
    const auto test = ReadCsv(data + "/mmlu/test/" + subject + "_test.csv");
    REQUIRE(dev.size() == 5);
    REQUIRE(test.size() >= 3);
    for (const auto* rows : {&dev, &test}) {
      for (const auto& r : *rows) {
        INFO(subject << ": " << r[0]);
        REQUIRE(r.size() == 6);
        REQUIRE((r[5] == "A" || r[5] == "B" || r[5] == "C" || r[5] == "D"));
      }
    }
    std::string words;
    for (size_t start = 0; start <= subject.size();) {
      size_t us = subject.find('_', start);
      if (us == std::string::npos) us = subject.size();
      words += " " + subject.substr(start, us - start);
      start = us + 1;
    }
    const std::string header =
        "The following are multiple choice questions (with answers) about " + words + ".\n\n";
    for (size_t t = 0; t < 3; ++t) {
      std::string p = header;
      for (const auto& d : dev) p += MmluExample(d, true);
      p += MmluExample(test[t], false);
      prompts.push_back(p);
    }
  }
  return prompts;
}

std::vector<std::string> C4Documents(const std::string& data) {
  std::ifstream in(data + "/c4/c4-validation-subset-2000.jsonl");
  std::vector<std::string> docs;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) docs.push_back(json::parse(line)["text"].get<std::string>());
  }
  return docs;
}

std::vector<std::string> UnicodeCases() {
  return json::parse(Slurp(bitsweep::testing::SourceDir() + "/tests/fixtures/unicode_cases.json"))
      .get<std::vector<std::string>>();
}

// An independent tokenizer in tools/hf_reference, run with Node.js.
struct Reference {
  std::string name;    // for messages
  std::string script;  // in tools/hf_reference
  std::string module;  // the npm package it needs
  // Texts this reference is known to tokenise unlike Hugging Face `tokenizers`.
  std::function<bool(const std::string&)> known_divergent;
};

// transformers.js compiles the pattern as a JS RegExp, whose \s takes U+FEFF and leaves out
// U+0085 (Oniguruma's, which `tokenizers` uses, does the opposite).
bool HasJsSpaceDivergence(const std::string& s) {
  return s.find("\xC2\x85") != std::string::npos || s.find("\xEF\xBB\xBF") != std::string::npos;
}

const Reference kTransformersJs{"transformers.js", "tokenize.mjs", "@huggingface/transformers",
                                HasJsSpaceDivergence};
const Reference kRustTokenizers{"Rust tokenizers", "tokenize_rust.mjs", "@anush008/tokenizers",
                                [](const std::string&) { return false; }};

std::string ReferenceDir() { return bitsweep::testing::SourceDir() + "/tools/hf_reference"; }

bool ReferenceAvailable(const Reference& ref) {
  const std::string cmd =
      "cd '" + ReferenceDir() + "' && node -e \"require('" + ref.module + "')\" > /dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    WARN("skipped the " << ref.name << " reference: Node.js or " << ref.module
                        << " is not installed (run: cd tools/hf_reference && npm ci "
                           "--ignore-scripts)");
    return false;
  }
  return true;
}

std::vector<std::vector<int32_t>> RunReference(const Reference& ref, const std::string& tokdir,
                                               const std::vector<std::string>& texts,
                                               const std::string& scratch) {
  const std::string dir = bitsweep::testing::ScratchDir(scratch);
  std::ofstream(dir + "/in.json") << json(texts).dump();
  const std::string cmd = "node '" + ReferenceDir() + "/" + ref.script + "' '" + tokdir + "' '" +
                          dir + "/in.json' > '" + dir + "/out.json' 2> '" + dir + "/err.txt'";
  const int rc = std::system(cmd.c_str());
  INFO(ref.name << " failed: " << Slurp(dir + "/err.txt"));
  REQUIRE(rc == 0);
  return json::parse(Slurp(dir + "/out.json")).get<std::vector<std::vector<int32_t>>>();
}

std::string Around(const std::vector<int32_t>& ids, size_t k) {
  std::ostringstream os;
  os << "[";
  for (size_t i = k >= 3 ? k - 3 : 0; i < std::min(ids.size(), k + 4); ++i) {
    os << (i == k ? " >" : " ") << ids[i];
  }
  os << " ]";
  return os.str();
}

// Compares Encode() with the reference's ids for every text; reports how many texts differ
// and, for the first, where: token index, byte offset and the text around it.
void CheckSameIds(const Tokenizer& tok, const Reference& ref, const std::vector<std::string>& texts,
                  const std::vector<std::vector<int32_t>>& expected, const std::string& what) {
  REQUIRE(expected.size() == texts.size());
  size_t compared = 0, ids = 0, skipped = 0, differing = 0;
  std::string first;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (ref.known_divergent(texts[i])) {
      ++skipped;
      continue;
    }
    const std::vector<int32_t> got = tok.Encode(texts[i]);
    ++compared;
    ids += expected[i].size();
    if (got == expected[i]) continue;
    if (differing++ > 0) continue;
    const std::vector<int32_t>& want = expected[i];
    size_t k = 0;
    while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
    const auto prefix = tok.Decode(std::vector<int32_t>(want.begin(), want.begin() + k));
    const size_t at = prefix.ok() ? prefix->size() : 0;
    const size_t from = at >= 40 ? at - 40 : 0;
    std::ostringstream os;
    os << what << " text " << i << " (" << texts[i].size() << " bytes): first difference at token "
       << k << " (reference has " << want.size() << " ids, we have " << got.size()
       << "), near byte " << at << " of the normalised text: \""
       << Printable(Nfc(texts[i]).substr(from, 80)) << "\"; ours " << Around(got, k) << " vs "
       << ref.name << " " << Around(want, k);
    first = os.str();
  }
  WARN(what << " vs " << ref.name << ": " << compared << " texts, " << ids << " ids compared, "
            << differing << " differ"
            << (skipped ? ", " + std::to_string(skipped) + " skipped (known " + ref.name +
                              " divergence from tokenizers)"
                        : std::string()));
  if (differing > 0) FAIL(differing << " texts differ; first: " << first);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The real Qwen3 tokenizer.

TEST_CASE("Qwen3's tokenizer gives Hugging Face's ids for known strings", "[tokenizer][data]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = Qwen3(data);
  // Ids from Hugging Face tokenizers 0.22.2 and transformers.js 3.7.6 (tools/hf_reference);
  // the two agree on all but the U+0085 line, where transformers.js's JS \s differs.
  const std::vector<std::pair<std::string, std::vector<int32_t>>> known = {
      {"Hello world, I'M here<|im_end|>  \n\n 1234",
       {9707, 1879, 11, 358, 27603, 1588, 151645, 18611, 220, 16, 17, 18, 19}},
      {"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
       {151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198, 151667,
        271, 151668, 271}},
      {"中文分词测试，日本語のテキスト。",
       {104811, 17177, 99689, 81705, 3837, 101059, 102819, 15767, 56833, 61803, 70534, 1773}},
      {"e\xCC\x81t\xC3\xA9 \xF0\x9F\x98\x80 caf\xC3\xA9", {38783, 90316, 51950}},
      {" = Robert Boulter = \n", {284, 8397, 425, 10965, 465, 284, 715}},
      {" \xE1\xA0\x8E!", {86089, 254, 236, 0}},
      {" \xC2\x85!", {220, 126, 227, 0}},
      {"we'LL see\tthe   end\r\n", {896, 6, 4086, 1490, 32088, 256, 835, 319}},
  };
  for (const auto& [text, ids] : known) {
    INFO("text \"" << Printable(text) << "\"");
    CHECK(tok->Encode(text) == ids);
  }
  CHECK(tok->TokenToId("<|endoftext|>") == 151643);
  CHECK(tok->TokenToId("<|im_start|>") == 151644);
  CHECK(tok->TokenToId("</think>") == 151668);
  CHECK(tok->TokenToId("Hello") == 9707);
  CHECK(tok->VocabSize() == 151669);
  CHECK(tok->Decode({151644, 872, 198, 9707, 1879, 151645}).value() ==
        "<|im_start|>user\nHello world<|im_end|>");
}

TEST_CASE("Qwen3's Decode(Encode(text)) is the NFC of the text", "[tokenizer][data]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = Qwen3(data);
  std::vector<std::string> texts = {WikiText2Text(data)};
  for (auto& p : MmluPrompts(data)) texts.push_back(p);
  for (auto& u : UnicodeCases()) texts.push_back(u);
  for (auto& r : RandomUtf8(300, 4242)) texts.push_back(r);
  for (const std::string& s : texts) {
    INFO("text \"" << Printable(s.substr(0, 200)) << "\"");
    CHECK(tok->Decode(tok->Encode(s)).value() == Nfc(s));
  }
}

TEST_CASE("Tokenizing WikiText-2 with Qwen3 (time reported, not asserted)", "[tokenizer][data]") {
  REQUIRE_SHARED_DATA(data);
  const auto t0 = std::chrono::steady_clock::now();
  auto tok = Qwen3(data);
  const auto t1 = std::chrono::steady_clock::now();
  const std::string text = WikiText2Text(data);
  const auto t2 = std::chrono::steady_clock::now();
  const auto ids = tok->Encode(text);
  const auto t3 = std::chrono::steady_clock::now();
  const auto again = tok->Encode(text);  // every word now cached
  const auto t4 = std::chrono::steady_clock::now();
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  WARN("Qwen3 tokenizer.json loaded in "
       << secs(t0, t1) << " s; WikiText-2 test (" << text.size() << " bytes): " << ids.size()
       << " tokens in " << secs(t2, t3) << " s (warm cache " << secs(t3, t4) << " s)");
  CHECK(ids == again);
  CHECK(ids.size() > 250000);
}

// ---------------------------------------------------------------------------------------------
// Cross-checks against tokenizers we did not write (tools/hf_reference, Node.js).

TEST_CASE(
    "Qwen3's tokenizer matches Rust tokenizers and transformers.js on WikiText-2, MMLU "
    "prompts, C4 and hard Unicode cases",
    "[tokenizer][data][node]") {
  REQUIRE_SHARED_DATA(data);
  auto tok = Qwen3(data);
  const std::vector<std::pair<std::string, std::vector<std::string>>> inputs = {
      {"WikiText-2", {WikiText2Text(data)}},
      {"MMLU", MmluPrompts(data)},
      {"C4", C4Documents(data)},
      {"unicode_cases.json", UnicodeCases()},
  };
  int checked = 0;
  for (const Reference* ref : {&kRustTokenizers, &kTransformersJs}) {
    if (!ReferenceAvailable(*ref)) continue;
    ++checked;
    for (const auto& [what, texts] : inputs) {
      REQUIRE_FALSE(texts.empty());
      const auto expected = RunReference(*ref, data + "/qwen3_tokenizer", texts, "tok_node");
      CheckSameIds(*tok, *ref, texts, expected, what);
    }
  }
  if (checked == 0) WARN("skipped: no Node.js reference tokenizer could run");
}

TEST_CASE(
    "Added-token flags, GPT-2 pre-tokenisation and a null normalizer match Rust "
    "tokenizers on the tiny tokenizer",
    "[tokenizer][node]") {
  std::vector<std::string> texts = {"a <L> b",
                                    "a  \t<L>b",
                                    "<L>",
                                    "x<R>  \n y",
                                    "<R>",
                                    "a<W>b",
                                    "a <W> b",
                                    "a_<W>",
                                    "\xC3\xA9<W>",
                                    "1<W>",
                                    "!<W>!",
                                    "<W>",
                                    "<W>e\xCC\x81",
                                    "caf\xC3\xA9",
                                    "cafe\xCC\x81",
                                    "le cafe\xCC\x81 noir",
                                    "<a><b>",
                                    "<a><a><b>",
                                    "<a><b",
                                    "x<a>y",
                                    "<L><L>",
                                    "  <L>  <L>  ",
                                    "<R><R>  ",
                                    "<W><W>",
                                    " <W> <W> ",
                                    "hello<|endoftext|>world<think>",
                                    "12 I'M !!hello",
                                    " \xE1\xA0\x8E!",
                                    " \xC2\x85!",
                                    " \xEF\xBB\xBF!",
                                    "allo aaaa hello world"};
  for (auto& u : UnicodeCases()) texts.push_back(u);
  for (auto& r : RandomUtf8(200, 99)) texts.push_back(r);
  if (!ReferenceAvailable(kRustTokenizers)) return;
  for (bool gpt2 : {false, true}) {
    const std::string name = gpt2 ? "tiny GPT-2" : "tiny Qwen2";
    const json j = TinyTokenizer(gpt2);
    const std::string dir = WriteTokenizer(j, gpt2 ? "tok_node_tiny_gpt2" : "tok_node_tiny");
    auto tok = LoadJson(j, gpt2 ? "tok_node_tiny_gpt2_load" : "tok_node_tiny_load");
    CheckSameIds(*tok, kRustTokenizers, texts,
                 RunReference(kRustTokenizers, dir, texts, "tok_node_tiny_run"), name);
  }
}
