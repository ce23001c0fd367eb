#include "tools/bpe_trainer.h"

#include <cctype>
#include <map>
#include <unordered_map>

#include "model/tiny_model.h"

namespace bitsweep::tools {
namespace {

std::vector<std::string> SplitWords(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0;
  const size_t n = text.size();
  auto alpha = [&](size_t k) { return k < n && std::isalpha(static_cast<unsigned char>(text[k])); };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t j = i + 1;
    if (std::isalpha(c) || (c == ' ' && alpha(i + 1))) {
      while (alpha(j)) ++j;
    } else if (std::isdigit(c)) {
      // one digit per word, as \p{N}
    } else if (std::isspace(c)) {
      while (j < n && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    } else {
      while (j < n && !std::isspace(static_cast<unsigned char>(text[j])) && !alpha(j) &&
             !std::isdigit(static_cast<unsigned char>(text[j]))) {
        ++j;
      }
    }
    words.push_back(text.substr(i, j - i));
    i = j;
  }
  return words;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> LearnBpeMerges(const std::string& text,
                                                                int num_merges) {
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& w : SplitWords(text)) ++counts[w];
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, c] : counts) {
    std::vector<std::string> syms;
    for (unsigned char b : w) syms.push_back(model::ByteLevelSymbol(b));
    words.push_back({syms, c});
  }
  std::vector<std::pair<std::string, std::string>> merges;
  for (int m = 0; m < num_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [syms, c] : words) {
      for (size_t i = 0; i + 1 < syms.size(); ++i) pairs[{syms[i], syms[i + 1]}] += c;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    if (best->second < 2) break;
    const auto [a, b] = best->first;
    merges.push_back({a, b});
    for (auto& [syms, c] : words) {
      std::vector<std::string> out;
      for (size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          out.push_back(a + b);
          ++i;
        } else {
          out.push_back(syms[i]);
        }
      }
      syms = std::move(out);
    }
  }
  return merges;
}

}  // namespace bitsweep::tools
