// The byte-level BPE encoder and decoder of model/bpe_tokenizer.h; model/tokenizer.cc loads
// its tables from tokenizer.json.
#include "model/bpe_tokenizer.h"

#include <limits>
#include <mutex>
#include <queue>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/tokenizer_unicode.h"

namespace bitsweep::model {
namespace {

// Words longer than this are not cached (as in `tokenizers`), and the cache is dropped when it
// reaches kMaxCacheEntries, so an unbounded corpus cannot grow it without limit. WikiText-2
// has ~30k distinct pieces.
constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 1 << 20;

}  // namespace

BpeTokenizer::~BpeTokenizer() {
  if (regex_ != nullptr) pcre2_code_free(regex_);
}

std::vector<int32_t> BpeTokenizer::Encode(std::string_view text) const {
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

StatusOr<std::string> BpeTokenizer::Decode(const std::vector<int32_t>& ids) const {
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

int32_t BpeTokenizer::VocabSize() const { return static_cast<int32_t>(id_to_bytes_.size()); }

int32_t BpeTokenizer::TokenToId(std::string_view token) const {
  const std::string key(token);
  auto a = added_ids_.find(key);
  if (a != added_ids_.end()) return a->second;
  auto it = vocab_.find(key);
  return it == vocab_.end() ? -1 : it->second;
}

// `tokenizers`' AddedVocabulary::find_matches: the aho-corasick leftmost-longest,
// non-overlapping matches of `set`; a single_word match inside a word is dropped (the scan
// still resumes after it); lstrip/rstrip widen a match over the whitespace beside it. Returns
// the spans covering all of `text` (none for empty text).
std::vector<BpeTokenizer::Span> BpeTokenizer::SplitOnAdded(std::string_view text,
                                                           const std::vector<int>& set) const {
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

void BpeTokenizer::PreTokenize(std::string_view text, std::vector<int32_t>* ids) const {
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
    int rc =
        jit_ ? pcre2_jit_match(regex_, subject, n, pos, 0, md, nullptr) : PCRE2_ERROR_JIT_BADOPTION;
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

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* ids) const {
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
std::vector<int32_t> BpeTokenizer::Bpe(std::string_view word) const {
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

}  // namespace bitsweep::model
