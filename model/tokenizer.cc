#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// GPT-2's pre-tokenizer, used by a ByteLevel pre-tokenizer with use_regex = true.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Word cache bound: WikiText-2 has ~30k distinct pieces; a runaway corpus must not grow the
// cache without limit.
constexpr size_t kMaxCacheEntries = 1 << 20;

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the others to U+0100+.
std::array<uint32_t, 256> ByteToCodepoint() {
  std::array<uint32_t, 256> code{};
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) code[b] = direct[b] ? static_cast<uint32_t>(b) : next++;
  return code;
}

struct AddedToken {
  int32_t id;
  std::string content;
  bool special, lstrip, rstrip, single_word, normalized;
};

struct PairHash {
  size_t operator()(uint64_t k) const { return std::hash<uint64_t>()(k * 0x9E3779B97F4A7C15ULL); }
};

bool IsSpace(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

bool IsWordByte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

class BpeTokenizer : public Tokenizer {
 public:
  ~BpeTokenizer() override {
    if (regex_ != nullptr) pcre2_code_free(regex_);
  }

  static StatusOr<std::unique_ptr<Tokenizer>> Create(const json& j, const std::string& path);

  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t begin = 0, end = 0;
      const AddedToken* tok = FindAdded(text, pos, &begin, &end);
      const size_t stop = tok ? begin : text.size();
      if (stop > pos) EncodeSegment(text.substr(pos, stop - pos), &ids);
      if (!tok) break;
      ids.push_back(tok->id);
      pos = end;
    }
    return ids;
  }

  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= id_to_bytes_.size() || !id_known_[id]) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", id, " is not in the vocabulary"));
      }
      out += id_to_bytes_[id];
    }
    return out;
  }

  int32_t VocabSize() const override { return static_cast<int32_t>(id_to_bytes_.size()); }

  int32_t TokenToId(std::string_view token) const override {
    for (const auto& a : added_) {
      if (a.content == token) return a.id;
    }
    auto it = vocab_.find(std::string(token));
    return it == vocab_.end() ? -1 : it->second;
  }

 private:
  // The leftmost added token at or after `pos` (longest on ties), honouring single_word and
  // widening the match over whitespace for lstrip/rstrip, as HF's AddedVocabulary does.
  const AddedToken* FindAdded(std::string_view text, size_t pos, size_t* begin,
                              size_t* end) const {
    const AddedToken* best = nullptr;
    size_t best_at = std::string_view::npos, best_len = 0;
    for (const auto& a : added_) {
      size_t from = pos;
      while (true) {
        size_t at = text.find(a.content, from);
        if (at == std::string_view::npos || at > best_at) break;
        const size_t e = at + a.content.size();
        const bool ok = !a.single_word ||
                        ((at == 0 || !IsWordByte(text[at - 1])) &&
                         (e == text.size() || !IsWordByte(text[e])));
        if (ok) {
          if (at < best_at || a.content.size() > best_len) {
            best = &a;
            best_at = at;
            best_len = a.content.size();
          }
          break;
        }
        from = at + 1;
      }
    }
    if (!best) return nullptr;
    *begin = best_at;
    *end = best_at + best_len;
    if (best->lstrip) {
      while (*begin > pos && IsSpace(text[*begin - 1])) --*begin;
    }
    if (best->rstrip) {
      while (*end < text.size() && IsSpace(text[*end])) ++*end;
    }
    return best;
  }

  void EncodeSegment(std::string_view segment, std::vector<int32_t>* ids) const {
    std::string normalized;
    if (nfc_) {
      utf8proc_uint8_t* out = nullptr;
      const utf8proc_ssize_t n = utf8proc_map(
          reinterpret_cast<const utf8proc_uint8_t*>(segment.data()),
          static_cast<utf8proc_ssize_t>(segment.size()), &out,
          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
      if (n >= 0) {
        normalized.assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
      } else {
        normalized.assign(segment);  // invalid UTF-8: left as is, like a lossy HF input
      }
      std::free(out);
    } else {
      normalized.assign(segment);
    }
    if (regex_ == nullptr) {
      EncodeWord(normalized, ids);
      return;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(regex_, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(normalized.data());
    const size_t n = normalized.size();
    size_t pos = 0, last = 0;
    while (pos < n) {
      const int rc = jit_ ? pcre2_jit_match(regex_, subject, n, pos, 0, md, nullptr)
                          : pcre2_match(regex_, subject, n, pos, 0, md, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t s = ov[0], e = ov[1];
      if (s > last) EncodeWord(std::string_view(normalized).substr(last, s - last), ids);
      if (e == s) {  // empty match: step one UTF-8 character and let it join the gap
        e = s + 1;
        while (e < n && (static_cast<unsigned char>(normalized[e]) & 0xC0) == 0x80) ++e;
        pos = e;
        continue;
      }
      EncodeWord(std::string_view(normalized).substr(s, e - s), ids);
      last = pos = e;
    }
    if (last < n) EncodeWord(std::string_view(normalized).substr(last), ids);
    pcre2_match_data_free(md);
  }

  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
    if (word.empty()) return;
    const std::string key(word);
    {
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        ids->insert(ids->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> syms;
    syms.reserve(word.size());
    for (unsigned char c : word) syms.push_back(byte_id_[c]);
    if (ignore_merges_) {
      std::string mapped;
      for (unsigned char c : word) AppendUtf8(byte_to_cp_[c], &mapped);
      auto it = vocab_.find(mapped);
      if (it != vocab_.end()) syms.assign(1, it->second);
    }
    // Repeatedly merge the leftmost occurrence of the lowest-ranked adjacent pair: the order
    // HF's BPE heap produces.
    while (syms.size() > 1) {
      int32_t best_rank = INT32_MAX;
      size_t best_i = 0;
      int32_t best_id = -1;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        auto it = merges_.find(Key(syms[i], syms[i + 1]));
        if (it != merges_.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best_i = i;
          best_id = it->second.second;
        }
      }
      if (best_id < 0) break;
      syms[best_i] = best_id;
      syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
    }
    ids->insert(ids->end(), syms.begin(), syms.end());
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(key, std::move(syms));
  }

  static uint64_t Key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>, PairHash> merges_;  // -> rank, id
  std::vector<AddedToken> added_;
  std::vector<std::string> id_to_bytes_;  // decoded bytes of every id
  std::vector<bool> id_known_;
  std::array<uint32_t, 256> byte_to_cp_{};
  std::array<int32_t, 256> byte_id_{};
  bool nfc_ = false;
  bool ignore_merges_ = false;
  pcre2_code* regex_ = nullptr;
  bool jit_ = false;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

Status FieldError(const std::string& path, const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": ", what));
}

// Decodes one UTF-8 code point at s[i], advancing i; returns -1 on malformed input.
int64_t NextCodepoint(const std::string& s, size_t* i) {
  utf8proc_int32_t cp = 0;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + *i,
                                              static_cast<utf8proc_ssize_t>(s.size() - *i), &cp);
  if (n <= 0) return -1;
  *i += static_cast<size_t>(n);
  return cp;
}

StatusOr<std::unique_ptr<Tokenizer>> BpeTokenizer::Create(const json& j, const std::string& path) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  if (!j.is_object()) return FieldError(path, "tokenizer.json", "must be a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) {
    return FieldError(path, "model", "is missing");
  }
  const json& m = j["model"];
  const std::string type = m.value("type", "");
  if (type != "BPE") {
    return FieldError(path, "model.type", "\"" + type + "\" is not supported (only BPE)");
  }
  if (m.contains("byte_fallback") && m["byte_fallback"].is_boolean() && m["byte_fallback"].get<bool>()) {
    return FieldError(path, "model.byte_fallback", "true is not supported (byte-level BPE only)");
  }
  t->ignore_merges_ = m.value("ignore_merges", false);
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return FieldError(path, "model.vocab", "is missing or not an object");
  }
  const auto byte_cp = ByteToCodepoint();
  std::unordered_map<uint32_t, int> cp_to_byte;
  for (int b = 0; b < 256; ++b) cp_to_byte[byte_cp[b]] = b;
  t->byte_to_cp_ = byte_cp;

  int32_t max_id = -1;
  std::vector<std::pair<int32_t, std::string>> entries;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0) {
      return FieldError(path, "model.vocab", "id of \"" + it.key() + "\" is not a non-negative integer");
    }
    const int32_t id = it.value().get<int32_t>();
    entries.push_back({id, it.key()});
    t->vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  std::vector<std::pair<int32_t, std::string>> added_entries;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          !a.contains("content") || !a["content"].is_string()) {
        return FieldError(path, "added_tokens", "every entry needs an integer id and a string content");
      }
      AddedToken tok{a["id"].get<int32_t>(), a["content"].get<std::string>(),
                     a.value("special", false), a.value("lstrip", false), a.value("rstrip", false),
                     a.value("single_word", false), a.value("normalized", false)};
      if (tok.content.empty()) return FieldError(path, "added_tokens", "empty content");
      max_id = std::max(max_id, tok.id);
      added_entries.push_back({tok.id, tok.content});
      t->added_.push_back(std::move(tok));
    }
  }
  t->id_to_bytes_.assign(static_cast<size_t>(max_id + 1), "");
  t->id_known_.assign(static_cast<size_t>(max_id + 1), false);
  for (const auto& [id, token] : entries) {
    if (t->id_known_[id]) {
      return FieldError(path, "model.vocab", absl::StrCat("id ", id, " is used twice"));
    }
    t->id_known_[id] = true;
    std::string bytes;
    size_t i = 0;
    while (i < token.size()) {
      const int64_t cp = NextCodepoint(token, &i);
      auto it = cp < 0 ? cp_to_byte.end() : cp_to_byte.find(static_cast<uint32_t>(cp));
      if (it == cp_to_byte.end()) {
        // Not a byte-level symbol (possible only in non-byte-level vocabularies): keep as text.
        bytes = token;
        break;
      }
      bytes.push_back(static_cast<char>(it->second));
    }
    t->id_to_bytes_[id] = bytes;
  }
  for (const auto& [id, content] : added_entries) {
    if (t->id_known_[id] && t->vocab_.count(content) == 0) {
      return FieldError(path, "added_tokens", absl::StrCat("id ", id, " is used twice"));
    }
    t->id_known_[id] = true;
    t->id_to_bytes_[id] = content;
  }
  for (int b = 0; b < 256; ++b) {
    std::string sym;
    AppendUtf8(byte_cp[b], &sym);
    auto it = t->vocab_.find(sym);
    if (it == t->vocab_.end()) {
      return FieldError(path, "model.vocab",
                        absl::StrCat("byte-level symbol for byte ", b, " (\"", sym, "\") is missing"));
    }
    t->byte_id_[b] = it->second;
  }

  if (m.contains("merges")) {
    if (!m["merges"].is_array()) return FieldError(path, "model.merges", "must be a list");
    int32_t rank = 0;
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else if (mg.is_string()) {
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          return FieldError(path, "model.merges", absl::StrCat("entry ", rank, " \"", s, "\" is not \"a b\""));
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        return FieldError(path, "model.merges", absl::StrCat("entry ", rank, " is not a pair of strings"));
      }
      auto ia = t->vocab_.find(a), ib = t->vocab_.find(b), im = t->vocab_.find(a + b);
      if (ia == t->vocab_.end() || ib == t->vocab_.end() || im == t->vocab_.end()) {
        return FieldError(path, "model.merges",
                          absl::StrCat("merge ", rank, " (\"", a, "\", \"", b,
                                       "\") names a token that is not in the vocabulary"));
      }
      t->merges_.emplace(Key(ia->second, ib->second), std::make_pair(rank, im->second));
      ++rank;
    }
  }

  // Normalizer: null, NFC, or a Sequence of those.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    std::vector<json> norms;
    const json& n = j["normalizer"];
    if (n.value("type", "") == "Sequence" && n.contains("normalizers")) {
      for (const auto& x : n["normalizers"]) norms.push_back(x);
    } else {
      norms.push_back(n);
    }
    for (const auto& x : norms) {
      const std::string nt = x.is_object() ? x.value("type", "") : "";
      if (nt != "NFC") {
        return FieldError(path, "normalizer", "type \"" + nt + "\" is not supported (only NFC)");
      }
      t->nfc_ = true;
    }
  }

  // Pre-tokenizer: Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] (Qwen2/3), or
  // ByteLevel(use_regex=true) alone (GPT-2).
  std::string pattern;
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    return FieldError(path, "pre_tokenizer", "is missing (a byte-level pre-tokenizer is required)");
  }
  std::vector<json> pres;
  const json& p = j["pre_tokenizer"];
  if (p.value("type", "") == "Sequence" && p.contains("pretokenizers")) {
    for (const auto& x : p["pretokenizers"]) pres.push_back(x);
  } else {
    pres.push_back(p);
  }
  bool byte_level = false;
  for (const auto& x : pres) {
    const std::string pt = x.is_object() ? x.value("type", "") : "";
    if (pt == "Split") {
      if (!x.contains("pattern") || !x["pattern"].contains("Regex") ||
          !x["pattern"]["Regex"].is_string()) {
        return FieldError(path, "pre_tokenizer.Split.pattern", "must be {\"Regex\": \"...\"}");
      }
      if (x.value("behavior", "") != "Isolated" || x.value("invert", false)) {
        return FieldError(path, "pre_tokenizer.Split",
                          "only behavior \"Isolated\" without invert is supported");
      }
      if (!pattern.empty()) return FieldError(path, "pre_tokenizer", "more than one Split");
      pattern = x["pattern"]["Regex"].get<std::string>();
    } else if (pt == "ByteLevel") {
      byte_level = true;
      if (x.value("add_prefix_space", false)) {
        return FieldError(path, "pre_tokenizer.ByteLevel", "add_prefix_space is not supported");
      }
      if (x.value("use_regex", true)) {
        if (!pattern.empty()) return FieldError(path, "pre_tokenizer", "two regex splits");
        pattern = kGpt2Pattern;
      }
    } else {
      return FieldError(path, "pre_tokenizer", "type \"" + pt + "\" is not supported");
    }
  }
  if (!byte_level) return FieldError(path, "pre_tokenizer", "has no ByteLevel step");
  if (!pattern.empty()) {
    int err = 0;
    PCRE2_SIZE off = 0;
    t->regex_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &off, nullptr);
    if (t->regex_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return FieldError(path, "pre_tokenizer regex",
                        absl::StrCat("does not compile at offset ", off, ": ", reinterpret_cast<char*>(msg)));
    }
    t->jit_ = pcre2_jit_compile(t->regex_, PCRE2_JIT_COMPLETE) == 0;
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  fs::path file = path;
  if (fs::is_directory(file)) file /= "tokenizer.json";
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(file.string(), ": cannot open tokenizer.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file.string(), ": invalid JSON: ", e.what()));
  }
  try {
    return BpeTokenizer::Create(j, file.string());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file.string(), ": malformed field: ", e.what()));
  }
}

}  // namespace bitsweep::model
