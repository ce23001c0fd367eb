#include "tests/model/tokenizer_testing.h"

#include <utf8proc.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "tests/testing/paths.h"

namespace bitsweep::model::tokenizer_test {

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
// model/tokenizer_unicode.cc: (byte, code point) in GPT-2 vocabulary order (printable bytes first).
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

namespace {

constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

json AddedTokenJson(int id, const std::string& content, bool special, bool normalized,
                    bool lstrip = false, bool rstrip = false, bool single_word = false) {
  return {{"id", id},          {"content", content}, {"single_word", single_word},
          {"lstrip", lstrip},  {"rstrip", rstrip},   {"normalized", normalized},
          {"special", special}};
}

}  // namespace

// A complete tokenizer.json (loadable by Hugging Face `tokenizers` too) laid out like Qwen3's:
// the 256 byte symbols (ids 0..255, GPT-2 order), then one token per merge, then added tokens
// that are not in model.vocab, with each lstrip/rstrip/single_word/normalized flag in use.
// `gpt2` swaps the Qwen2 Split + NFC for GPT-2's ByteLevel(use_regex) and no normalizer.
json TinyTokenizer(bool gpt2) {
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

}  // namespace bitsweep::model::tokenizer_test
