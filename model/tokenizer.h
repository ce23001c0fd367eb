// Hugging Face `tokenizer.json` byte-level BPE tokenizer (the Qwen2/Qwen3 family).
//
// Pipeline, as the `tokenizers` library runs it for Qwen3:
//   added tokens are split out first (leftmost-longest, special or not; those with
//   normalized=false, all of Qwen3's, in the text as given, the others after NFC);
//   each remaining span: NFC normalisation -> Split by the pre-tokenizer regex (PCRE2, Unicode
//   classes) -> ByteLevel byte->unicode mapping -> BPE merges by rank -> vocabulary ids.
// The regex is the one in tokenizer.json, written for Oniguruma (what `tokenizers` uses); the
// escapes whose meaning differs in PCRE2 (\s, \w, \h, \v) are rewritten to Oniguruma's meaning.
// Checked id for id against Hugging Face `tokenizers` (Rust) and transformers.js by
// tests/model/tokenizer_reference_test.cc (tools/hf_reference).
// Decoding maps ids back to tokens, undoes the byte->unicode mapping and concatenates
// (added tokens decode to their content).
//
// Immutable after Load() but for an internal word cache; Encode/Decode are thread-safe. Load
// errors are InvalidArgument (a missing file included) and name the file and the offending field
// (missing "model", unknown model type, a merge naming an unknown token, an id not below twice
// the number of tokens plus 65536: ids index tables of max id + 1 entries, so they must be
// dense, ...).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {

class Tokenizer {
 public:
  // `path` is a tokenizer.json file, or a directory containing one.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // The same from the text of a tokenizer.json; `source` names it in error messages.
  static StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view json_text,
                                                       const std::string& source);
  virtual ~Tokenizer() = default;

  // Token ids for `text`, exactly as Hugging Face `tokenizer(text).input_ids` with no special
  // tokens added (Qwen3 adds none: add_bos_token is false).
  virtual std::vector<int32_t> Encode(std::string_view text) const = 0;
  // The text of `ids`. Unknown ids are an InvalidArgument naming the id. The bytes are returned
  // as they are: where `ids` cut a multi-byte character, `tokenizers` would give U+FFFD instead.
  virtual StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const = 0;

  // Number of ids (regular vocabulary plus added tokens): max id + 1.
  virtual int32_t VocabSize() const = 0;
  // The id of a token string (regular or added), or -1.
  virtual int32_t TokenToId(std::string_view token) const = 0;
};

}  // namespace bitsweep::model
