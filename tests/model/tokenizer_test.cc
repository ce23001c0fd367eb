// The tokenizer on the tiny tokenizer.json of tokenizer_testing.h (no data needed): BPE merges,
// the byte alphabet, round trips, the pre-tokenizer regex, added tokens, thread safety and the
// errors of malformed files (model/tokenizer.cc, model/bpe_tokenizer.cc,
// model/tokenizer_unicode.cc).
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
using bitsweep::model::tokenizer_test::ByteAlphabet;
using bitsweep::model::tokenizer_test::Ids;
using bitsweep::model::tokenizer_test::LoadJson;
using bitsweep::model::tokenizer_test::Nfc;
using bitsweep::model::tokenizer_test::Printable;
using bitsweep::model::tokenizer_test::RandomUtf8;
using bitsweep::model::tokenizer_test::TinyTokenizer;
using bitsweep::model::tokenizer_test::Utf8;
using bitsweep::model::tokenizer_test::WriteTokenizer;

}  // namespace

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

TEST_CASE("Merges in the older 'a b' string form give the same ids as [a, b] lists",
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

TEST_CASE(
    "An id far beyond the vocabulary size is rejected, naming the id and the size, before any "
    "table is allocated for it",
    "[tokenizer]") {
  // Ids index tables of (largest id + 1) entries: 2^31 - 2 would make them ~80 GB.
  const int32_t huge = 2147483646;
  struct Case {
    std::string name, field;
    std::function<void(json&)> mutate;
  };
  const std::vector<Case> cases = {
      {"vocab", "model.vocab", [&](json& j) { j["model"]["vocab"]["zz"] = huge; }},
      {"added", "added_tokens[0]", [&](json& j) { j["added_tokens"][0]["id"] = huge; }},
  };
  for (const Case& c : cases) {
    INFO("case " << c.name);
    json j = TinyTokenizer();
    c.mutate(j);
    const size_t tokens = j["model"]["vocab"].size() + j["added_tokens"].size();
    auto t = Tokenizer::Load(WriteTokenizer(j, "tok_sparse_" + c.name));
    REQUIRE_FALSE(t.ok());
    CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(t.status().message());
    CHECK_THAT(msg, Contains(c.field) && Contains(std::to_string(huge)) &&
                        Contains(std::to_string(tokens) + " tokens"));
  }
  // The bound: ids below twice the number of tokens plus 65536 load, gaps and all.
  json j = TinyTokenizer();
  const int32_t limit =
      2 * static_cast<int32_t>(j["model"]["vocab"].size() + j["added_tokens"].size()) + 65536;
  j["added_tokens"][0]["id"] = limit - 1;
  auto tok = LoadJson(j, "tok_sparse_ok");
  CHECK(tok->VocabSize() == limit);
  CHECK(tok->Encode("<|endoftext|>") == std::vector<int32_t>{limit - 1});
  j["added_tokens"][0]["id"] = limit;
  auto over = Tokenizer::Load(WriteTokenizer(j, "tok_sparse_over"));
  REQUIRE_FALSE(over.ok());
  CHECK_THAT(std::string(over.status().message()),
             Contains("added_tokens[0]") && Contains(std::to_string(limit)));
}
