#include "model/tokenizer.h"

#include <utf8proc.h>

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

std::string Utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

std::string Nfc(const std::string& s) {
  utf8proc_uint8_t* out = utf8proc_NFC(reinterpret_cast<const utf8proc_uint8_t*>(s.c_str()));
  REQUIRE(out != nullptr);
  std::string r(reinterpret_cast<char*>(out));
  std::free(out);
  return r;
}

// GPT-2's bytes_to_unicode, as in the original Python, written here independently of
// model/tokenizer.cc: (byte, code point) in GPT-2 vocabulary order (printable bytes first).
std::vector<std::pair<int, char32_t>> ByteAlphabet() {
  std::vector<int> bs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  std::vector<char32_t> cs(bs.begin(), bs.end());
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(static_cast<char32_t>(256 + n++));
    }
  }
  std::vector<std::pair<int, char32_t>> out;
  for (size_t i = 0; i < bs.size(); ++i) out.push_back({bs[i], cs[i]});
  return out;
}

constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json AddedTokenJson(int id, const std::string& content, bool special, bool normalized,
                    bool lstrip = false, bool rstrip = false, bool single_word = false) {
  return {{"id", id},          {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip},  {"rstrip", rstrip},   {"normalized", normalized},
          {"special", special}};
}

// A complete tokenizer.json (loadable by Hugging Face `tokenizers` too) laid out like Qwen3's:
// the 256 byte symbols (ids 0..255, GPT-2 order), then one token per merge, then added tokens
// that are not in model.vocab, with each lstrip/rstrip/single_word/normalized flag in use.
// `gpt2` swaps the Qwen2 Split + NFC for GPT-2's ByteLevel(use_regex) and no normalizer.
json TinyTokenizer(bool gpt2 = false) {
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"l", "o"}, {"h", "e"},  {"he", "l"},  {"l", "l"},    {"a", "a"},
      {"Ġ", "w"}, {"Ġw", "o"}, {"Ġwo", "r"}, {"Ġwor", "l"}, {"Ġworl", "d"},
      {"1", "2"}, {"'", "M"},  {"Ġ", "á"},   {"Ġ", "Â"},    {"!", "!"}};
  json vocab = json::object();
  for (const auto& [b, cp] : ByteAlphabet()) vocab[Utf8(cp)] = static_cast<int>(vocab.size());
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = static_cast<int>(vocab.size());
    merge_list.push_back({a, b});
  }
  int id = static_cast<int>(vocab.size());
  json added = json::array({
      AddedTokenJson(id, "<|endoftext|>", true, false),
      AddedTokenJson(id + 1, "<think>", false, false),
      AddedTokenJson(id + 2, "<L>", false, false, /*lstrip=*/true),
      AddedTokenJson(id + 3, "<R>", false, false, false, /*rstrip=*/true),
      AddedTokenJson(id + 4, "<W>", false, false, false, false, /*single_word=*/true),
      AddedTokenJson(id + 5, "caf\xC3\xA9", false, /*normalized=*/true),  // café, precomposed
      AddedTokenJson(id + 6, "<a>", true, false),
      AddedTokenJson(id + 7, "<a><b>", true, false),
  });
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", false},
                           {"use_regex", gpt2}};
  json pre = byte_level;
  if (!gpt2) {
    pre = {{"type", "Sequence"},
           {"pretokenizers", json::array({{{"type", "Split"},
                                           {"pattern", {{"Regex", kQwen2Regex}}},
                                           {"behavior", "Isolated"},
                                           {"invert", false}},
                                          byte_level})}};
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", gpt2 ? json(nullptr) : json({{"type", "NFC"}})},
          {"pre_tokenizer", pre},
          {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", ""},
            {"end_of_word_suffix", ""},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merge_list}}}};
}

std::string WriteTokenizer(const json& j, const std::string& name) {
  const std::string dir = bitsweep::testing::ScratchDir(name);
  std::ofstream(dir + "/tokenizer.json") << j.dump();
  return dir;
}

std::unique_ptr<Tokenizer> LoadJson(const json& j, const std::string& name) {
  auto t = Tokenizer::Load(WriteTokenizer(j, name));
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

// The ids of the given token strings (each must exist).
std::vector<int32_t> Ids(const Tokenizer& tok, const std::vector<std::string>& tokens) {
  std::vector<int32_t> ids;
  for (const std::string& t : tokens) {
    INFO("token " << t);
    REQUIRE(tok.TokenToId(t) >= 0);
    ids.push_back(tok.TokenToId(t));
  }
  return ids;
}

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

std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
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

// Random valid UTF-8 drawn from ASCII, whitespace, Latin-1, combining marks, Hangul jamo, CJK,
// emoji and any other Unicode scalar value (unassigned and private-use included).
std::vector<std::string> RandomUtf8(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},     {0x09, 0x0D},     {0xA0, 0xFF},       {0x300, 0x36F},  {0x370, 0x4FF},
      {0x1100, 0x11FF}, {0x4E00, 0x9FFF}, {0x1F300, 0x1FAFF}, {0x80, 0x10FFFF}};
  std::vector<std::string> out;
  for (size_t i = 0; i < count; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 40);
    for (int k = 0; k < len; ++k) {
      const auto& [lo, hi] = ranges[rng() % ranges.size()];
      char32_t cp = lo + rng() % (hi - lo + 1);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      s += Utf8(cp);
    }
    out.push_back(s);
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Unit tests on the tiny tokenizer (no data needed).

TEST_CASE("BPE merges the adjacent pair of lowest rank first, leftmost on ties", "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_rank");
  // h e l l o: (l,o) has rank 0, then (h,e), then (he,l); (l,l) never wins.
  CHECK(tok->Encode("hello") == Ids(*tok, {"hel", "lo"}));
  // a l l o: merging by rank gives l + lo; merging left to right would have given ll + o.
  CHECK(tok->Encode("allo") == Ids(*tok, {"a", "l", "lo"}));
  CHECK(tok->Encode("aaa") == Ids(*tok, {"aa", "a"}));
  CHECK(tok->Encode("aaaa") == Ids(*tok, {"aa", "aa"}));
  CHECK(tok->Encode("hello world") == Ids(*tok, {"hel", "lo", "Ġworld"}));
  CHECK(tok->Decode(tok->Encode("hello world")).value() == "hello world");
}

TEST_CASE("A very long word is merged completely", "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_long");
  const std::string word(100000, 'a');
  const auto ids = tok->Encode(word);
  REQUIRE(ids.size() == 50000);
  CHECK(
      std::all_of(ids.begin(), ids.end(), [&](int32_t id) { return id == tok->TokenToId("aa"); }));
  CHECK(tok->Encode(word + "a").size() == 50001);
}

TEST_CASE("A repeated merge takes its last rank, as tokenizers does", "[tokenizer]") {
  json j = TinyTokenizer();
  j["model"]["vocab"]["ab"] = 1000;
  j["model"]["vocab"]["bc"] = 1001;
  j["model"]["merges"] = json::array({{"a", "b"}, {"b", "c"}, {"a", "b"}});
  auto tok = LoadJson(j, "tok_dup_merge");
  CHECK(tok->Encode("abc") == Ids(*tok, {"a", "bc"}));
}

TEST_CASE("Merges in the older \"a b\" string form give the same ids as [a, b] lists",
          "[tokenizer]") {
  json lists = TinyTokenizer();
  json strings = lists;
  for (auto& m : strings["model"]["merges"])
    m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  auto a = LoadJson(lists, "tok_merge_lists");
  auto b = LoadJson(strings, "tok_merge_strings");
  for (const std::string s : {"hello world", "allo aaaa", "12 I'M !!"}) {
    CHECK(a->Encode(s) == b->Encode(s));
  }
}

TEST_CASE("Every byte maps through GPT-2's bytes_to_unicode alphabet", "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_bytes");
  // Spot values of the mapping, from GPT-2's encoder.py.
  CHECK(tok->Encode(" ") == Ids(*tok, {"Ġ"}));              // 0x20 -> U+0120
  CHECK(tok->Encode("\n") == Ids(*tok, {"Ċ"}));             // 0x0A -> U+010A
  CHECK(tok->Encode("\x7F") == Ids(*tok, {"ġ"}));           // 0x7F -> U+0121
  CHECK(tok->Encode("\xC2\xAD") == Ids(*tok, {"Â", "Ń"}));  // U+00AD: C2 -> U+00C2, AD -> U+0143
  CHECK(tok->Encode("\xC3\xA9") == Ids(*tok, {"Ã", "©"}));  // é: C3 A9 map to themselves
  // U+180E is bytes E1 A0 8E: E1 -> U+00E1, A0 -> U+0142, 8E -> U+0130.
  CHECK(tok->Encode("\xE1\xA0\x8E") == Ids(*tok, {"á", "ł", "İ"}));
  // Every symbol decodes back to its byte.
  for (const auto& [b, cp] : ByteAlphabet()) {
    INFO("byte " << b);
    CHECK(tok->Decode({tok->TokenToId(Utf8(cp))}).value() == std::string(1, static_cast<char>(b)));
  }
}

TEST_CASE("Decode(Encode(x)) gives back NFC(x) for random valid UTF-8", "[tokenizer]") {
  auto nfc = LoadJson(TinyTokenizer(), "tok_roundtrip_nfc");
  auto raw = LoadJson(TinyTokenizer(/*gpt2=*/true), "tok_roundtrip_raw");
  for (const std::string& s : RandomUtf8(400, 12345)) {
    INFO("text \"" << Printable(s) << "\"");
    CHECK(nfc->Decode(nfc->Encode(s)).value() == Nfc(s));
    CHECK(raw->Decode(raw->Encode(s)).value() == s);  // no normalizer: bytes unchanged
  }
}

TEST_CASE("Invalid UTF-8 (which tokenizers never receives) still round-trips byte for byte",
          "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_invalid_utf8");
  for (const std::string& s : {std::string("\xFF\xFE hello \xC3"), std::string("a\x80\x80 b"),
                               std::string("\xED\xA0\x80 surrogate"), std::string("x\0y", 3),
                               std::string("<think>\xC3<think>")}) {
    INFO("text \"" << Printable(s) << "\"");
    CHECK(tok->Decode(tok->Encode(s)).value() == s);
  }
}

TEST_CASE(
    "NFC normalisation composes decomposed characters before BPE, and a null normalizer "
    "leaves them",
    "[tokenizer]") {
  auto nfc = LoadJson(TinyTokenizer(), "tok_nfc");
  CHECK(nfc->Encode("e\xCC\x81") == nfc->Encode("\xC3\xA9"));          // e + U+0301 == é
  CHECK(nfc->Decode(nfc->Encode("A\xCC\x8A")).value() == "\xC3\x85");  // A + ring -> Å
  json j = TinyTokenizer();
  j["normalizer"] = nullptr;
  auto raw = LoadJson(j, "tok_nonorm");
  CHECK(raw->Encode("e\xCC\x81") == Ids(*raw, {"e", "Ì", "ģ"}));  // U+0301 is CC 81
}

TEST_CASE("The pre-tokenizer regex comes from tokenizer.json: Qwen2's Split or GPT-2's ByteLevel",
          "[tokenizer]") {
  auto qwen = LoadJson(TinyTokenizer(), "tok_regex_qwen");
  auto gpt2 = LoadJson(TinyTokenizer(/*gpt2=*/true), "tok_regex_gpt2");
  // Qwen2 isolates single digits; GPT-2 keeps digit runs, so the (1, 2) merge applies.
  CHECK(qwen->Encode("12") == Ids(*qwen, {"1", "2"}));
  CHECK(gpt2->Encode("12") == Ids(*gpt2, {"12"}));
  // Qwen2's contractions are case-insensitive ('M is one piece); GPT-2's are not.
  CHECK(qwen->Encode("I'M") == Ids(*qwen, {"I", "'M"}));
  CHECK(gpt2->Encode("I'M") == Ids(*gpt2, {"I", "'", "M"}));
}

TEST_CASE("Regex whitespace follows Oniguruma: U+0085 is a space and U+180E is not",
          "[tokenizer]") {
  for (bool gpt2 : {false, true}) {
    INFO((gpt2 ? "GPT-2 pattern" : "Qwen2 pattern"));
    auto tok = LoadJson(TinyTokenizer(gpt2), gpt2 ? "tok_ws_gpt2" : "tok_ws_qwen");
    // " U+180E!" is one punctuation piece, so the (Ġ, á) merge joins the space and its first
    // byte; PCRE2's own \s (which includes U+180E) would have split the space off.
    CHECK(tok->Encode(" \xE1\xA0\x8E!") == Ids(*tok, {"Ġá", "ł", "İ", "!"}));
    // U+0085 (C2 85) is whitespace, so " " is split from it and (Ġ, Â) cannot apply.
    CHECK(tok->Encode(" \xC2\x85!") == Ids(*tok, {"Ġ", "Â", "ħ", "!"}));
  }
}

TEST_CASE(
    "Added tokens are split out of the raw text first, longest match leftmost, and decode "
    "to their content",
    "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_added");
  const int32_t eot = tok->TokenToId("<|endoftext|>");
  CHECK(eot == 271);  // after 256 bytes and 15 merges: not in model.vocab
  CHECK(tok->VocabSize() == 279);
  const auto hello = Ids(*tok, {"hel", "lo"});
  std::vector<int32_t> want = hello;
  want.push_back(eot);
  want.insert(want.end(), hello.begin(), hello.end());
  CHECK(tok->Encode("hello<|endoftext|>hello") == want);
  CHECK(tok->Encode("<|endoftext|><|endoftext|>") == std::vector<int32_t>{eot, eot});
  CHECK(tok->Encode("<think>") == Ids(*tok, {"<think>"}));
  const auto partial = tok->Encode("<thin");  // a partial token is ordinary text
  CHECK(std::count(partial.begin(), partial.end(), tok->TokenToId("<think>")) == 0);
  CHECK(tok->Decode(partial).value() == "<thin");
  // Leftmost-longest: "<a><b>" beats "<a>" where both start; "<a>" wins where it starts first.
  CHECK(tok->Encode("<a><b>") == Ids(*tok, {"<a><b>"}));
  CHECK(tok->Encode("<a><a><b>") == Ids(*tok, {"<a>", "<a><b>"}));
  CHECK(tok->Encode("<a><b") ==
        std::vector<int32_t>{tok->TokenToId("<a>"), tok->TokenToId("<"), tok->TokenToId("b")});
  // Added tokens decode to their content; the regex never sees them ("<" is not joined to "a").
  CHECK(tok->Decode(tok->Encode("x<a>y<think>z")).value() == "x<a>y<think>z");
  CHECK(tok->Encode("x<a>y") ==
        std::vector<int32_t>{tok->TokenToId("x"), tok->TokenToId("<a>"), tok->TokenToId("y")});
  CHECK(tok->TokenToId("not a token") == -1);
}

TEST_CASE("lstrip, rstrip and single_word widen or drop added-token matches as tokenizers does",
          "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_flags");
  const int32_t l = tok->TokenToId("<L>"), r = tok->TokenToId("<R>"), w = tok->TokenToId("<W>");
  // lstrip takes the whitespace (any Unicode White_Space) before the token, rstrip after it.
  CHECK(tok->Encode("x \t\xC2\xA0<L>y") ==
        std::vector<int32_t>{tok->TokenToId("x"), l, tok->TokenToId("y")});
  CHECK(tok->Encode("x<R>\xE3\x80\x80 \ny") ==
        std::vector<int32_t>{tok->TokenToId("x"), r, tok->TokenToId("y")});
  CHECK(tok->Encode("x <R> y") ==
        std::vector<int32_t>{tok->TokenToId("x"), tok->TokenToId("Ġ"), r, tok->TokenToId("y")});
  // single_word: only between non-word characters (letters, digits, marks, "_" are word).
  CHECK(tok->Encode("a <W> b") == std::vector<int32_t>{tok->TokenToId("a"), tok->TokenToId("Ġ"), w,
                                                       tok->TokenToId("Ġ"), tok->TokenToId("b")});
  CHECK(tok->Encode("!<W>!") == std::vector<int32_t>{tok->TokenToId("!"), w, tok->TokenToId("!")});
  CHECK(tok->Encode("<W>") == std::vector<int32_t>{w});
  for (const std::string s : {"a<W>", "<W>b", "_<W>", "1<W>", "\xC3\xA9<W>", "<W>e\xCC\x81"}) {
    INFO(s);
    const auto ids = tok->Encode(s);
    CHECK(std::count(ids.begin(), ids.end(), w) == 0);
    CHECK(tok->Decode(ids).value() == Nfc(s));
  }
}

TEST_CASE(
    "Added tokens with normalized=true are matched in the NFC text, the others in the raw "
    "text",
    "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_added_norm");
  const int32_t cafe = tok->TokenToId("caf\xC3\xA9");
  CHECK(tok->Encode("caf\xC3\xA9") == std::vector<int32_t>{cafe});
  CHECK(tok->Encode("cafe\xCC\x81") == std::vector<int32_t>{cafe});  // decomposed é
  CHECK(tok->Encode("le cafe\xCC\x81!") ==
        std::vector<int32_t>{tok->TokenToId("l"), tok->TokenToId("e"), tok->TokenToId("Ġ"), cafe,
                             tok->TokenToId("!")});
  // A normalized=false token written decomposed in the text is not that token.
  json j = TinyTokenizer();
  j["added_tokens"][5]["normalized"] = false;
  auto raw = LoadJson(j, "tok_added_raw");
  const auto ids = raw->Encode("cafe\xCC\x81");
  CHECK(std::count(ids.begin(), ids.end(), cafe) == 0);
}

TEST_CASE("Decode rejects ids outside the vocabulary, naming the id", "[tokenizer]") {
  auto tok = LoadJson(TinyTokenizer(), "tok_decode_err");
  for (int32_t bad : {279, 100000, -1}) {
    auto d = tok->Decode({0, bad});
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(d.status().message()), Contains(std::to_string(bad)));
  }
  CHECK(tok->Decode({}).value().empty());
  CHECK(tok->Encode("").empty());
}

TEST_CASE("Concurrent Encode calls give the same ids as a serial run", "[tokenizer]") {
  const auto texts = RandomUtf8(300, 777);
  auto serial = LoadJson(TinyTokenizer(), "tok_serial");
  std::vector<std::vector<int32_t>> want;
  for (const auto& s : texts) want.push_back(serial->Encode(s));
  auto shared = LoadJson(TinyTokenizer(), "tok_shared");
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 3; ++rep) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (shared->Encode(texts[(i + t * 37) % texts.size()]) !=
              want[(i + t * 37) % texts.size()]) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(mismatches == std::vector<int>(4, 0));
}

TEST_CASE(
    "Malformed tokenizer.json files are rejected with InvalidArgument naming the file and "
    "the field",
    "[tokenizer]") {
  struct Case {
    std::string name;
    std::function<void(json&)> mutate;
    std::vector<std::string> expect;  // substrings of the message besides the file name
  };
  const std::vector<Case> cases = {
      {"top_level_array", [](json& j) { j = json::array(); }, {"(top level)", "object"}},
      {"no_model", [](json& j) { j.erase("model"); }, {"model", "missing"}},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, {"model.type", "WordPiece"}},
      {"no_vocab", [](json& j) { j["model"].erase("vocab"); }, {"model.vocab", "missing"}},
      {"negative_id", [](json& j) { j["model"]["vocab"]["zz"] = -3; }, {"model.vocab", "zz"}},
      {"string_id", [](json& j) { j["model"]["vocab"]["zz"] = "7"; }, {"model.vocab", "zz"}},
      {"duplicate_id",
       [](json& j) { j["model"]["vocab"]["duplicate"] = 5; },
       {"model.vocab", "id 5 is used twice", "duplicate"}},
      {"merge_unknown_token",
       [](json& j) {
         j["model"]["merges"].push_back({"q", "zz"});
       },
       {"model.merges", "\"zz\"", "not in model.vocab"}},
      {"merge_unknown_result",
       [](json& j) {
         j["model"]["merges"].push_back({"q", "q"});
       },
       {"model.merges", "makes \"qq\""}},
      {"merge_not_pair",
       [](json& j) { j["model"]["merges"].push_back(17); },
       {"model.merges", "entry 15"}},
      {"merge_string_no_space",
       [](json& j) { j["model"]["merges"].push_back("ab"); },
       {"model.merges", "\"ab\""}},
      {"merges_not_list", [](json& j) { j["model"]["merges"] = "x"; }, {"model.merges", "list"}},
      {"missing_byte", [](json& j) { j["model"]["vocab"].erase("Ġ"); }, {"model.vocab", "byte 32"}},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, {"model.dropout"}},
      {"subword_prefix",
       [](json& j) { j["model"]["continuing_subword_prefix"] = "##"; },
       {"model.continuing_subword_prefix"}},
      {"added_id_clash",
       [](json& j) { j["added_tokens"][0]["id"] = 3; },
       {"added_tokens[0]", "id 3 is used twice"}},
      {"added_in_vocab_other_id",
       [](json& j) { j["added_tokens"][0]["content"] = "he"; },
       {"added_tokens[0]", "\"he\"", "model.vocab gives it"}},
      {"added_no_content",
       [](json& j) { j["added_tokens"][1].erase("content"); },
       {"added_tokens[1]", "content"}},
      {"added_same_content",
       [](json& j) { j["added_tokens"][1]["content"] = "<|endoftext|>"; },
       {"added_tokens[1]", "listed twice"}},
      {"added_flag_not_bool",
       [](json& j) { j["added_tokens"][2]["lstrip"] = "yes"; },
       {"added_tokens[2].lstrip"}},
      {"normalizer",
       [](json& j) {
         j["normalizer"] = {{"type", "Lowercase"}};
       },
       {"normalizer", "Lowercase"}},
      {"normalizer_in_sequence",
       [](json& j) {
         j["normalizer"] = {{"type", "Sequence"},
                            {"normalizers", json::array({{{"type", "NFC"}}, {{"type", "NFKD"}}})}};
       },
       {"normalizer", "NFKD"}},
      {"pre_tokenizer",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Whitespace"}};
       },
       {"pre_tokenizer", "Whitespace"}},
      {"no_pre_tokenizer",
       [](json& j) { j["pre_tokenizer"] = nullptr; },
       {"pre_tokenizer", "missing"}},
      {"split_behavior",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
       {"pre_tokenizer.pretokenizers[0]", "Isolated"}},
      {"bad_regex",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "([a-z"; },
       {"pre_tokenizer.pretokenizers[0].pattern.Regex", "does not compile"}},
      {"no_byte_level",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"].erase(1); },
       {"pre_tokenizer", "ByteLevel"}},
      {"prefix_space",
       [](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["add_prefix_space"] = true; },
       {"pre_tokenizer.pretokenizers[1].add_prefix_space"}},
      {"decoder",
       [](json& j) {
         j["decoder"] = {{"type", "WordPiece"}};
       },
       {"decoder", "WordPiece"}},
  };
  for (const Case& c : cases) {
    INFO("case " << c.name);
    json j = TinyTokenizer();
    c.mutate(j);
    const std::string dir = WriteTokenizer(j, "tok_bad_" + c.name);
    auto t = Tokenizer::Load(dir);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(t.status().message());
    CHECK_THAT(msg, Contains(dir + "/tokenizer.json"));
    for (const std::string& e : c.expect) CHECK_THAT(msg, Contains(e));
  }

  const std::string dir = bitsweep::testing::ScratchDir("tok_bad_files");
  std::ofstream(dir + "/broken.json") << "{\"model\": ";
  auto broken = Tokenizer::Load(dir + "/broken.json");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(broken.status().message()),
             Contains(dir + "/broken.json") && Contains("invalid JSON"));
  for (const std::string& missing : {dir + "/nowhere.json", dir /* no tokenizer.json inside */}) {
    auto t = Tokenizer::Load(missing);
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(t.status().message()), Contains(missing) && Contains("no such file"));
  }
  fs::create_directories(dir + "/sub/tokenizer.json");  // a directory where the file should be
  auto unreadable = Tokenizer::Load(dir + "/sub");
  REQUIRE_FALSE(unreadable.ok());
  CHECK(unreadable.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(unreadable.status().message()),
             Contains(dir + "/sub/tokenizer.json") && Contains("is a directory"));
}

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
