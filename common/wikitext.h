// The WikiText-2 text as the study's loaders build it.
#pragma once

#include <string>

namespace bitsweep {

// Hugging Face's wikitext-2-raw-v1 rows from a raw file (each line keeps its "\n"; lines of
// only whitespace become ""), joined with "\n\n" (GPTQ's `"\n\n".join(data["text"])`).
std::string JoinWikiTextRows(const std::string& raw);

}  // namespace bitsweep
