#include "model/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// GPT-2's pre-tokenizer, used by a ByteLevel pre-tokenizer with use_regex = true.
constexpr char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Oniguruma's Unicode \s (what `tokenizers` compiles the pattern with): the White_Space
// property. PCRE2's UCP \s also takes U+180E (via \h), which Unicode stopped calling a space.
constexpr char kOnigSpaceItems[] = R"(\x{09}-\x{0d}\x{85}\p{Z})";
// Oniguruma's Unicode \w: Letter | Mark | Decimal_Number | Connector_Punctuation. PCRE2 10.42's
// UCP \w is Letter | Number | "_".
constexpr char kOnigWordItems[] = R"(\p{L}\p{M}\p{Nd}\p{Pc})";

// Words longer than this are not cached (as in `tokenizers`), and the cache is dropped when it
// reaches kMaxCacheEntries, so an unbounded corpus cannot grow it without limit. WikiText-2
// has ~30k distinct pieces.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 20;

Status FieldError(const std::string& path, const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", field, ": ", what));
}

void AppendUtf8(uint32_t cp, std::string* out) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
  out->append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
}

// The code point at s[i], advancing i; -1 (and one byte) for a malformed sequence.
int32_t NextCodepoint(std::string_view s, size_t* i) {
  utf8proc_int32_t cp = -1;
  const utf8proc_ssize_t n =
      utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()) + *i,
                       static_cast<utf8proc_ssize_t>(s.size() - *i), &cp);
  *i += n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? cp : -1;
}

// The code point that ends s (s non-empty), or -1 when s ends in a malformed sequence.
int32_t LastCodepoint(std::string_view s) {
  size_t start = s.size() - 1;
  while (start > 0 && s.size() - start < 4 &&
         (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
    --start;
  }
  size_t i = start;
  const int32_t cp = NextCodepoint(s, &i);
  return i == s.size() ? cp : -1;
}

// Rust regex's \s, which `tokenizers` uses for lstrip/rstrip: the White_Space property.
bool IsWhiteSpace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// Rust regex's \w, which `tokenizers` uses for single_word: Alphabetic | Mark | Decimal_Number |
// Connector_Punctuation | Join_Control. Alphabetic is taken as Letter | Letter_Number, which
// leaves out the few Other_Alphabetic symbols (circled letters).
bool IsWordChar(int32_t cp) {
  if (cp < 0) return false;
  if (cp == 0x200C || cp == 0x200D) return true;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

// NFC of `s`; input that is not valid UTF-8 is returned unchanged (`tokenizers` only ever sees
// valid UTF-8, so there is nothing to match).
std::string Nfc(std::string_view s) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
      &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::string result =
      n >= 0 ? std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n)) : std::string(s);
  std::free(out);
  return result;
}

// Rewrites the Oniguruma pattern of a tokenizer.json so that PCRE2 gives it Oniguruma's meaning
// where the two dialects differ on escapes: \s \S \w \W (Unicode classes), \h \H (hex digits in
// Oniguruma) and \v (the VT character in Oniguruma). Negated classes inside [...] cannot be
// spelled as a union and are left to PCRE2's meaning; the Qwen2 and GPT-2 patterns use none.
std::string OnigurumaToPcre2(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char d = pattern[++i];
      const std::string space = kOnigSpaceItems, word = kOnigWordItems, hex = "0-9a-fA-F";
      switch (d) {
        case 's':
          out += in_class ? space : "[" + space + "]";
          continue;
        case 'w':
          out += in_class ? word : "[" + word + "]";
          continue;
        case 'h':
          out += in_class ? hex : "[" + hex + "]";
          continue;
        case 'v':
          out += R"(\x{0b})";
          continue;
        case 'S':
          if (!in_class) {
            out += "[^" + space + "]";
            continue;
          }
          break;
        case 'W':
          if (!in_class) {
            out += "[^" + word + "]";
            continue;
          }
          break;
        case 'H':
          if (!in_class) {
            out += "[^" + hex + "]";
            continue;
          }
          break;
        default:
          break;
      }
      out += c;
      out += d;
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ]
      continue;
    }
    if (in_class && c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {
      const size_t close = pattern.find(":]", i + 2);
      if (close != std::string::npos) {
        out.append(pattern, i, close + 2 - i);
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the others, in byte
// order, to U+0100 onwards.
std::array<uint32_t, 256> ByteToCodepoint() {
  std::array<uint32_t, 256> code{};
  uint32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    code[b] = direct ? static_cast<uint32_t>(b) : next++;
  }
  return code;
}

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

class BpeTokenizer : public Tokenizer {
 public:
  ~BpeTokenizer() override {
    if (regex_ != nullptr) pcre2_code_free(regex_);
  }

  static StatusOr<std::unique_ptr<Tokenizer>> Create(const json& j, const std::string& path);

  std::vector<int32_t> Encode(std::string_view text) const override {
    // As `tokenizers`' AddedVocabulary::extract_and_normalize: tokens with normalized=false are
    // found in the raw text, the others in each normalised piece between them.
    std::vector<int32_t> ids;
    for (const Span& raw : SplitOnAdded(text, raw_tokens_)) {
      if (raw.token >= 0) {
        ids.push_back(added_[raw.token].id);
        continue;
      }
      const std::string_view piece = text.substr(raw.begin, raw.end - raw.begin);
      const std::string normalized = nfc_ ? Nfc(piece) : std::string(piece);
      for (const Span& s : SplitOnAdded(normalized, normalized_tokens_)) {
        if (s.token >= 0) {
          ids.push_back(added_[s.token].id);
        } else {
          PreTokenize(std::string_view(normalized).substr(s.begin, s.end - s.begin), &ids);
        }
      }
    }
    return ids;
  }

  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= id_to_bytes_.size() || !id_known_[id]) {
        return absl::InvalidArgumentError(
            absl::StrCat("token id ", id, " is not in the vocabulary (size ", VocabSize(), ")"));
      }
      out += id_to_bytes_[id];
    }
    return out;
  }

  int32_t VocabSize() const override { return static_cast<int32_t>(id_to_bytes_.size()); }

  int32_t TokenToId(std::string_view token) const override {
    const std::string key(token);
    auto a = added_ids_.find(key);
    if (a != added_ids_.end()) return a->second;
    auto it = vocab_.find(key);
    return it == vocab_.end() ? -1 : it->second;
  }

 private:
  // `tokenizers`' AddedVocabulary::find_matches: the aho-corasick leftmost-longest,
  // non-overlapping matches of `set`; a single_word match inside a word is dropped (the scan
  // still resumes after it); lstrip/rstrip widen a match over the whitespace beside it. Returns
  // the spans covering all of `text` (none for empty text).
  std::vector<Span> SplitOnAdded(std::string_view text, const std::vector<int>& set) const {
    std::vector<Span> spans;
    if (text.empty()) return spans;
    constexpr size_t kUnknown = std::numeric_limits<size_t>::max() - 1;
    std::vector<size_t> next(set.size(), kUnknown);  // next occurrence of each token at/after pos
    size_t pos = 0, start_offset = 0;
    while (!set.empty()) {
      int best = -1;
      size_t best_at = std::string_view::npos, best_len = 0;
      for (size_t k = 0; k < set.size(); ++k) {
        const std::string& content = added_[set[k]].content;
        if (next[k] == kUnknown || (next[k] != std::string_view::npos && next[k] < pos)) {
          next[k] = text.find(content, pos);
        }
        if (next[k] == std::string_view::npos) continue;
        if (next[k] < best_at || (next[k] == best_at && content.size() > best_len)) {
          best = set[k];
          best_at = next[k];
          best_len = content.size();
        }
      }
      if (best < 0) break;
      const AddedToken& tok = added_[best];
      size_t start = best_at, stop = best_at + best_len;
      pos = stop;
      // Only a token that starts with whitespace could start inside the whitespace an rstrip
      // has taken; `tokenizers` would emit overlapping spans there, this drops the match.
      if (start < start_offset) continue;
      if (tok.single_word) {
        const bool word_before = start > 0 && IsWordChar(LastCodepoint(text.substr(0, start)));
        size_t i = stop;
        const bool word_after = stop < text.size() && IsWordChar(NextCodepoint(text, &i));
        if (word_before || word_after) continue;
      }
      if (tok.lstrip) {
        while (start > start_offset && IsWhiteSpace(LastCodepoint(text.substr(0, start)))) {
          size_t back = start - 1;
          while (back > 0 && (static_cast<unsigned char>(text[back]) & 0xC0) == 0x80) --back;
          start = back;
        }
      }
      if (tok.rstrip) {
        while (stop < text.size()) {
          size_t i = stop;
          if (!IsWhiteSpace(NextCodepoint(text, &i))) break;
          stop = i;
        }
      }
      if (start_offset < start) spans.push_back({start_offset, start, -1});
      spans.push_back({start, stop, best});
      start_offset = stop;
    }
    if (start_offset < text.size()) spans.push_back({start_offset, text.size(), -1});
    return spans;
  }

  // Split(Regex, Isolated): every match is a word, and so is every stretch between matches.
  void PreTokenize(std::string_view text, std::vector<int32_t>* ids) const {
    if (text.empty()) return;
    if (regex_ == nullptr) {
      EncodeWord(text, ids);
      return;
    }
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const size_t n = text.size();
    size_t pos = 0, last = 0;
    while (pos < n) {
      int rc = jit_ ? pcre2_jit_match(regex_, subject, n, pos, 0, md, nullptr)
                    : PCRE2_ERROR_JIT_BADOPTION;
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        // JIT stack exhausted (or no JIT): the interpreter has its own, heap-based limits.
        rc = pcre2_match(regex_, subject, n, pos, 0, md, nullptr);
      }
      if (rc < 0) break;  // no further match (rc == 0 means a match with a short ovector)
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t s = ov[0], e = ov[1];
      if (s > last) EncodeWord(text.substr(last, s - last), ids);
      last = s;
      if (e == s) {  // empty match: step over one character, which joins the next stretch
        size_t i = s;
        NextCodepoint(text, &i);
        pos = i;
        continue;
      }
      EncodeWord(text.substr(s, e - s), ids);
      last = pos = e;
    }
    if (last < n) EncodeWord(text.substr(last), ids);
    pcre2_match_data_free(md);
  }

  void EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    std::string key;
    if (cacheable) {
      key.assign(word);
      std::shared_lock<std::shared_mutex> lock(cache_mu_);
      auto it = cache_.find(key);
      if (it != cache_.end()) {
        ids->insert(ids->end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> syms = Bpe(word);
    ids->insert(ids->end(), syms.begin(), syms.end());
    if (!cacheable) return;
    std::unique_lock<std::shared_mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::move(syms));
  }

  // `tokenizers`' Word::merge_all without dropout: repeatedly merge the adjacent pair with the
  // lowest merge rank, leftmost first, via a min-heap of candidate pairs; entries made stale by
  // an earlier merge are skipped when popped. O(n log n), so very long words stay cheap.
  std::vector<int32_t> Bpe(std::string_view word) const {
    if (ignore_merges_) {
      std::string mapped;
      for (unsigned char c : word) AppendUtf8(byte_to_cp_[c], &mapped);
      auto it = vocab_.find(mapped);
      if (it != vocab_.end()) return {it->second};
    }
    struct Symbol {
      int32_t id, prev, next;  // id -1: merged into its left neighbour
    };
    const int32_t n = static_cast<int32_t>(word.size());
    std::vector<Symbol> sym(static_cast<size_t>(n));
    for (int32_t i = 0; i < n; ++i) {
      sym[i] = {byte_id_[static_cast<unsigned char>(word[i])], i - 1, i + 1 < n ? i + 1 : -1};
    }
    struct Candidate {
      int32_t rank, pos, new_id;
      bool operator<(const Candidate& o) const {  // reversed: the heap top is the smallest
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::priority_queue<Candidate> heap;
    auto push = [&](int32_t pos) {
      const int32_t right = sym[pos].next;
      if (right < 0) return;
      auto it = merges_.find(Key(sym[pos].id, sym[right].id));
      if (it != merges_.end()) heap.push({it->second.first, pos, it->second.second});
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      const Candidate top = heap.top();
      heap.pop();
      Symbol& left = sym[top.pos];
      if (left.id < 0 || left.next < 0) continue;
      const int32_t right = left.next;
      auto it = merges_.find(Key(left.id, sym[right].id));
      if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale
      left.id = top.new_id;
      left.next = sym[right].next;
      sym[right].id = -1;
      if (left.next >= 0) sym[left.next].prev = top.pos;
      if (left.prev >= 0) push(left.prev);
      push(top.pos);
    }
    std::vector<int32_t> out;
    for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) out.push_back(sym[i].id);
    return out;
  }

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

std::string TypeOf(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>()
                                                                      : "";
}

// A bool field that may be absent (then `def`); anything else but a bool is an error.
StatusOr<bool> BoolField(const json& obj, const char* key, bool def, const std::string& path,
                         const std::string& field) {
  if (!obj.contains(key) || obj[key].is_null()) return def;
  if (!obj[key].is_boolean()) return FieldError(path, field + "." + key, "must be true or false");
  return obj[key].get<bool>();
}

StatusOr<std::unique_ptr<Tokenizer>> BpeTokenizer::Create(const json& j, const std::string& path) {
  auto t = std::unique_ptr<BpeTokenizer>(new BpeTokenizer());
  if (!j.is_object()) return FieldError(path, "(top level)", "must be a JSON object");
  if (!j.contains("model") || !j["model"].is_object()) {
    return FieldError(path, "model", "is missing (or not an object)");
  }
  const json& m = j["model"];
  // `tokenizers` accepts a model without "type" when its fields are BPE's.
  const std::string type = m.contains("type") ? TypeOf(m) : (m.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    return FieldError(path, "model.type", "\"" + type + "\" is not supported (only BPE)");
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0) {
    return FieldError(path, "model.dropout", "BPE dropout is random; only null or 0 is supported");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && m[key] != "") {
      return FieldError(path, std::string("model.") + key, "only \"\" or null is supported");
    }
  }
  // byte_fallback needs no support: every byte has a symbol (checked below), so BPE never meets
  // a character outside the vocabulary.
  ASSIGN_OR_RETURN(t->ignore_merges_, BoolField(m, "ignore_merges", false, path, "model"));
  if (!m.contains("vocab") || !m["vocab"].is_object()) {
    return FieldError(path, "model.vocab", "is missing or not an object");
  }
  const auto byte_cp = ByteToCodepoint();
  std::unordered_map<int32_t, int> cp_to_byte;
  for (int b = 0; b < 256; ++b) cp_to_byte[static_cast<int32_t>(byte_cp[b])] = b;
  t->byte_to_cp_ = byte_cp;
  // The bytes a token string stands for under the ByteLevel decoder: its characters mapped back
  // through bytes_to_unicode, or, if any character is outside that alphabet, its own UTF-8.
  auto token_bytes = [&cp_to_byte](const std::string& token) {
    std::string bytes;
    size_t i = 0;
    while (i < token.size()) {
      auto it = cp_to_byte.find(NextCodepoint(token, &i));
      if (it == cp_to_byte.end()) return token;
      bytes.push_back(static_cast<char>(it->second));
    }
    return bytes;
  };

  int64_t max_id = -1;
  std::vector<std::pair<int32_t, const std::string*>> entries;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    const json& v = it.value();
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        v.get<int64_t>() > std::numeric_limits<int32_t>::max() - 1) {
      return FieldError(path, "model.vocab",
                        "id of \"" + it.key() + "\" is not a non-negative 32-bit integer");
    }
    const int32_t id = v.get<int32_t>();
    entries.push_back({id, &it.key()});
    t->vocab_.emplace(it.key(), id);
    max_id = std::max<int64_t>(max_id, id);
  }

  std::vector<AddedToken> added;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) return FieldError(path, "added_tokens", "must be a list");
    for (size_t k = 0; k < j["added_tokens"].size(); ++k) {
      const json& a = j["added_tokens"][k];
      const std::string field = absl::StrCat("added_tokens[", k, "]");
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
          a["id"].get<int64_t>() < 0 ||
          a["id"].get<int64_t>() > std::numeric_limits<int32_t>::max() - 1 ||
          !a.contains("content") || !a["content"].is_string() ||
          a["content"].get<std::string>().empty()) {
        return FieldError(path, field, "needs a non-negative integer id and a non-empty content");
      }
      AddedToken tok{a["id"].get<int32_t>(),
                     a["content"].get<std::string>(),
                     false,
                     false,
                     false,
                     false,
                     false};
      ASSIGN_OR_RETURN(tok.special, BoolField(a, "special", false, path, field));
      ASSIGN_OR_RETURN(tok.lstrip, BoolField(a, "lstrip", false, path, field));
      ASSIGN_OR_RETURN(tok.rstrip, BoolField(a, "rstrip", false, path, field));
      ASSIGN_OR_RETURN(tok.single_word, BoolField(a, "single_word", false, path, field));
      // AddedToken::from's default: special tokens are matched in the raw text.
      ASSIGN_OR_RETURN(tok.normalized, BoolField(a, "normalized", !tok.special, path, field));
      max_id = std::max<int64_t>(max_id, tok.id);
      added.push_back(std::move(tok));
    }
  }

  t->id_to_bytes_.assign(static_cast<size_t>(max_id + 1), "");
  t->id_known_.assign(static_cast<size_t>(max_id + 1), false);
  std::vector<const std::string*> id_token(static_cast<size_t>(max_id + 1), nullptr);
  for (const auto& [id, token] : entries) {
    if (id_token[id] != nullptr) {
      return FieldError(
          path, "model.vocab",
          absl::StrCat("id ", id, " is used twice (\"", *id_token[id], "\" and \"", *token, "\")"));
    }
    id_token[id] = token;
    t->id_known_[id] = true;
    t->id_to_bytes_[id] = token_bytes(*token);
  }
  for (size_t k = 0; k < added.size(); ++k) {
    const AddedToken& a = added[k];
    const std::string field = absl::StrCat("added_tokens[", k, "]");
    auto in_vocab = t->vocab_.find(a.content);
    if (in_vocab != t->vocab_.end() && in_vocab->second != a.id) {
      return FieldError(path, field,
                        absl::StrCat("\"", a.content, "\" has id ", a.id,
                                     " but model.vocab gives it ", in_vocab->second));
    }
    if (t->added_ids_.count(a.content) != 0) {
      return FieldError(path, field, "\"" + a.content + "\" is listed twice");
    }
    if (t->id_known_[a.id] && in_vocab == t->vocab_.end()) {
      const std::string other = id_token[a.id] != nullptr ? *id_token[a.id] : "another added token";
      return FieldError(
          path, field,
          absl::StrCat("id ", a.id, " is used twice (\"", other, "\" and \"", a.content, "\")"));
    }
    t->id_known_[a.id] = true;
    // `tokenizers` decodes added tokens through the same ByteLevel decoder as the others.
    t->id_to_bytes_[a.id] = token_bytes(a.content);
    t->added_ids_.emplace(a.content, a.id);
  }

  for (int b = 0; b < 256; ++b) {
    std::string sym;
    AppendUtf8(byte_cp[b], &sym);
    auto it = t->vocab_.find(sym);
    if (it == t->vocab_.end()) {
      return FieldError(
          path, "model.vocab",
          absl::StrCat("the byte-level symbol for byte ", b, " (\"", sym, "\") is missing"));
    }
    t->byte_id_[b] = it->second;
  }

  if (m.contains("merges") && !m["merges"].is_null()) {
    if (!m["merges"].is_array()) return FieldError(path, "model.merges", "must be a list");
    int32_t rank = 0;
    for (const auto& mg : m["merges"]) {
      std::string a, b;
      if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
        a = mg[0].get<std::string>();
        b = mg[1].get<std::string>();
      } else if (mg.is_string()) {  // the pre-0.20 "a b" form
        const std::string s = mg.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos) {
          return FieldError(path, "model.merges",
                            absl::StrCat("entry ", rank, " \"", s, "\" is not \"a b\""));
        }
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else {
        return FieldError(path, "model.merges",
                          absl::StrCat("entry ", rank, " is neither [a, b] nor \"a b\""));
      }
      for (const std::string* name : {&a, &b}) {
        if (t->vocab_.count(*name) == 0) {
          return FieldError(path, "model.merges",
                            absl::StrCat("merge ", rank, " [\"", a, "\", \"", b, "\"] names \"",
                                         *name, "\", which is not in model.vocab"));
        }
      }
      auto merged = t->vocab_.find(a + b);
      if (merged == t->vocab_.end()) {
        return FieldError(path, "model.merges",
                          absl::StrCat("merge ", rank, " [\"", a, "\", \"", b, "\"] makes \"", a, b,
                                       "\", which is not in model.vocab"));
      }
      // A repeated pair takes its last rank, as `tokenizers` collects the list into a map.
      t->merges_.insert_or_assign(Key(t->vocab_[a], t->vocab_[b]),
                                  std::make_pair(rank, merged->second));
      ++rank;
    }
  }

  // Normalizer: null, NFC, or a Sequence of those.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    std::vector<json> norms;
    if (TypeOf(n) == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      norms.assign(n["normalizers"].begin(), n["normalizers"].end());
    } else {
      norms.push_back(n);
    }
    for (const auto& x : norms) {
      if (TypeOf(x) != "NFC") {
        return FieldError(path, "normalizer",
                          "type \"" + TypeOf(x) + "\" is not supported (only NFC, or null)");
      }
      t->nfc_ = true;
    }
  }
  for (size_t k = 0; k < added.size(); ++k) {
    if (added[k].normalized && t->nfc_) added[k].content = Nfc(added[k].content);
  }
  for (bool special : {true, false}) {
    for (size_t k = 0; k < added.size(); ++k) {
      if (added[k].special != special) continue;
      (added[k].normalized ? t->normalized_tokens_ : t->raw_tokens_).push_back(static_cast<int>(k));
    }
  }
  t->added_ = std::move(added);

  // Pre-tokenizer: Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] (Qwen2/3), or
  // ByteLevel(use_regex=true) alone (GPT-2).
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    return FieldError(path, "pre_tokenizer", "is missing (a ByteLevel pre-tokenizer is required)");
  }
  const json& p = j["pre_tokenizer"];
  std::vector<std::pair<json, std::string>> pres;  // step, its field name
  if (TypeOf(p) == "Sequence" && p.contains("pretokenizers") && p["pretokenizers"].is_array()) {
    for (size_t k = 0; k < p["pretokenizers"].size(); ++k) {
      pres.push_back({p["pretokenizers"][k], absl::StrCat("pre_tokenizer.pretokenizers[", k, "]")});
    }
  } else {
    pres.push_back({p, "pre_tokenizer"});
  }
  std::string pattern, pattern_field;
  bool byte_level = false;
  for (const auto& [x, field] : pres) {
    const std::string pt = TypeOf(x);
    if (pt == "Split") {
      if (byte_level) return FieldError(path, field, "a Split after ByteLevel is not supported");
      if (!x.contains("pattern") || !x["pattern"].is_object() || !x["pattern"].contains("Regex") ||
          !x["pattern"]["Regex"].is_string()) {
        return FieldError(path, field + ".pattern", "must be {\"Regex\": \"...\"}");
      }
      if (x.value("behavior", "") != "Isolated" || x.value("invert", false)) {
        return FieldError(path, field, "only behavior \"Isolated\" with invert false is supported");
      }
      if (!pattern.empty()) return FieldError(path, field, "only one Split is supported");
      pattern = x["pattern"]["Regex"].get<std::string>();
      pattern_field = field + ".pattern.Regex";
    } else if (pt == "ByteLevel") {
      if (byte_level) return FieldError(path, field, "ByteLevel appears twice");
      byte_level = true;
      ASSIGN_OR_RETURN(bool prefix, BoolField(x, "add_prefix_space", false, path, field));
      if (prefix) return FieldError(path, field + ".add_prefix_space", "true is not supported");
      ASSIGN_OR_RETURN(bool use_regex, BoolField(x, "use_regex", true, path, field));
      if (use_regex) {
        if (!pattern.empty()) {
          return FieldError(path, field + ".use_regex", "true after a Split is not supported");
        }
        pattern = kGpt2Pattern;
        pattern_field = field + ".use_regex";
      }
    } else {
      return FieldError(path, field,
                        "type \"" + pt + "\" is not supported (only Split and ByteLevel)");
    }
  }
  if (!byte_level) return FieldError(path, "pre_tokenizer", "has no ByteLevel step");

  if (j.contains("decoder") && !j["decoder"].is_null() && TypeOf(j["decoder"]) != "ByteLevel") {
    return FieldError(path, "decoder",
                      "type \"" + TypeOf(j["decoder"]) + "\" is not supported (only ByteLevel)");
  }

  if (!pattern.empty()) {
    const std::string translated = OnigurumaToPcre2(pattern);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_compile_context* ctx = pcre2_compile_context_create(nullptr);
    pcre2_set_newline(ctx, PCRE2_NEWLINE_LF);
    // MULTILINE: in Oniguruma's Ruby syntax ^ and $ are line anchors.
    t->regex_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_MATCH_INVALID_UTF,
                              &err, &off, ctx);
    pcre2_compile_context_free(ctx);
    if (t->regex_ == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return FieldError(path, pattern_field,
                        absl::StrCat("regex does not compile (PCRE2, at offset ", off, " of \"",
                                     translated, "\"): ", reinterpret_cast<char*>(msg)));
    }
    t->jit_ = pcre2_jit_compile(t->regex_, PCRE2_JIT_COMPLETE) == 0;
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  fs::path file = path;
  std::error_code ec;
  if (fs::is_directory(file, ec)) file /= "tokenizer.json";
  const std::string name = file.string();
  if (!fs::exists(file, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot open: no such file"));
  }
  if (fs::is_directory(file, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot open: is a directory"));
  }
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  if (in) ss << in.rdbuf();
  if (!in || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": cannot be read"));
  }
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": invalid JSON: ", e.what()));
  }
  try {
    return BpeTokenizer::Create(j, name);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": malformed field: ", e.what()));
  }
}

}  // namespace bitsweep::model
