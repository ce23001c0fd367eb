// Helpers shared by the tokenizer tests (tests/model/tokenizer*_test.cc): a tiny tokenizer.json
// laid out like Qwen3's, loading it, and text generators written independently of
// model/tokenizer*.cc. Helpers that REQUIRE fail the calling test.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "model/tokenizer.h"

namespace bitsweep::model::tokenizer_test {

std::string Slurp(const std::string& path);
// The UTF-8 encoding of `cp`.
std::string Utf8(char32_t cp);
// NFC by utf8proc, REQUIRing valid UTF-8.
std::string Nfc(const std::string& s);
// GPT-2's bytes_to_unicode, as in the original Python, written here independently of
// model/tokenizer_unicode.cc: (byte, code point) in GPT-2 vocabulary order (printable bytes first).
std::vector<std::pair<int, char32_t>> ByteAlphabet();
// A complete tokenizer.json (loadable by Hugging Face `tokenizers` too) laid out like Qwen3's:
// the 256 byte symbols (ids 0..255, GPT-2 order), then one token per merge, then added tokens
// that are not in model.vocab, with each lstrip/rstrip/single_word/normalized flag in use.
// `gpt2` swaps the Qwen2 Split + NFC for GPT-2's ByteLevel(use_regex) and no normalizer.
nlohmann::json TinyTokenizer(bool gpt2 = false);
// Writes `j` as tokenizer.json into a fresh scratch directory `name`; returns the directory.
std::string WriteTokenizer(const nlohmann::json& j, const std::string& name);
// WriteTokenizer, then Tokenizer::Load, REQUIRing success.
std::unique_ptr<Tokenizer> LoadJson(const nlohmann::json& j, const std::string& name);
// The ids of the given token strings (each must exist).
std::vector<int32_t> Ids(const Tokenizer& tok, const std::vector<std::string>& tokens);
// `s` with control characters escaped, for messages.
std::string Printable(const std::string& s);
// Random valid UTF-8 drawn from ASCII, whitespace, Latin-1, combining marks, Hangul jamo, CJK,
// emoji and any other Unicode scalar value (unassigned and private-use included).
std::vector<std::string> RandomUtf8(size_t count, uint32_t seed);

}  // namespace bitsweep::model::tokenizer_test
