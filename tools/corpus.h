// A seeded synthetic English-like corpus that bitsweep generates itself, for training the demo
// model. Sections keep a place (their " = Title = " names it) and paragraphs a person, named in
// the paragraph's first sentence so that later pronouns agree with it across many tokens;
// sentences follow a small grammar with number and subject-verb agreement ("one coin", "three
// foxes sleep"), lists ("a map, two coins and an apple"), copies ("gave the lamp to Leo, who kept
// the lamp") and arithmetic facts ("seven plus two is nine.", "three times four is twelve."),
// exact regularities for a small model to learn, so that quantization damage shows up as a
// clear perplexity increase.
// Deterministic per seed on every platform (own PRNG, no std:: distributions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitsweep::tools {

struct CorpusOptions {
  uint64_t seed = 1;
  size_t bytes = 1 << 20;       // approximate size of the text
  bool wikitext_layout = true;  // " = Title = " headings and " " + line + "\n" rows like WikiText
};

std::string GenerateCorpus(const CorpusOptions& options);

// One document per paragraph group, for C4-style JSONL files; each about `doc_bytes` long.
std::vector<std::string> GenerateDocuments(uint64_t seed, size_t count, size_t doc_bytes);

}  // namespace bitsweep::tools
