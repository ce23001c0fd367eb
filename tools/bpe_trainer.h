// Learns byte-level BPE merges from text, for the demo model's small tokenizer.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace bitsweep::tools {

// `num_merges` merges (pairs of GPT-2 byte-level symbol strings, in rank order) learned by the
// classic algorithm: split the text into words (a letter run with an optional leading space,
// single digits, punctuation runs, whitespace runs: the Qwen2 pre-tokenizer's classes on
// ASCII), then repeatedly merge the most frequent adjacent pair (ties: the smaller pair).
std::vector<std::pair<std::string, std::string>> LearnBpeMerges(const std::string& text,
                                                                int num_merges);

}  // namespace bitsweep::tools
