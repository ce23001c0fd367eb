// Internal to model/: the byte-level BPE tokenizer behind model/tokenizer.h. Its tables are
// filled from tokenizer.json by Create() (model/tokenizer.cc); encoding and decoding are in
// model/bpe_tokenizer.cc. Immutable after Create() but for the word cache, which cache_mu_
// guards, so Encode and Decode are thread-safe.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/tokenizer.h"

namespace bitsweep::model {

class BpeTokenizer : public Tokenizer {
 public:
  ~BpeTokenizer() override;

  // The tokenizer described by the parsed tokenizer.json `j`; errors name `path` and the field.
  static StatusOr<std::unique_ptr<Tokenizer>> Create(const nlohmann::json& j,
                                                     const std::string& path);

  std::vector<int32_t> Encode(std::string_view text) const override;
  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override;
  int32_t VocabSize() const override;
  int32_t TokenToId(std::string_view token) const override;

 private:
  struct AddedToken {
    int32_t id;
    std::string content;  // as matched: NFC'd at load when `normalized` and a normalizer is set
    bool special, lstrip, rstrip, single_word, normalized;
  };

  // A span of the text being encoded: an added token (token >= 0, an index into added_) or text
  // for the model (token == -1).
  struct Span {
    size_t begin, end;
    int token;
  };

  BpeTokenizer() = default;

  std::vector<Span> SplitOnAdded(std::string_view text, const std::vector<int>& set) const;
  // Split(Regex, Isolated): every match is a word, and so is every stretch between matches.
  void PreTokenize(std::string_view text, std::vector<int32_t>* ids) const;
  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const;
  std::vector<int32_t> Bpe(std::string_view word) const;

  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  struct KeyHash {
    size_t operator()(uint64_t k) const { return std::hash<uint64_t>()(k * 0x9E3779B97F4A7C15ULL); }
  };

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>, KeyHash> merges_;  // -> rank, id
  std::vector<AddedToken> added_;
  std::unordered_map<std::string, int32_t> added_ids_;  // original content -> id
  // Indices into added_, special tokens first then the others, each in file order (the order
  // `tokenizers` builds its automata in).
  std::vector<int> raw_tokens_, normalized_tokens_;
  std::vector<std::string> id_to_bytes_;  // decoded bytes of every id
  std::vector<bool> id_known_;
  std::array<uint32_t, 256> byte_to_cp_{};
  std::array<int32_t, 256> byte_id_{};
  bool nfc_ = false;
  bool ignore_merges_ = false;
  pcre2_code* regex_ = nullptr;
  bool jit_ = false;
  mutable std::shared_mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace bitsweep::model
