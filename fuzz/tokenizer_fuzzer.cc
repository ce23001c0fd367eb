// libFuzzer harness: a tokenizer.json through Tokenizer::FromJson; an accepted tokenizer then
// encodes and decodes a fixed multilingual text (the regex, the added-token split and BPE run on
// whatever the file set up).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "model/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tokenizer = bitsweep::model::Tokenizer::FromJson(text, "fuzz/tokenizer.json");
  if (!tokenizer.ok()) return 0;
  static constexpr char kSample[] =
      "Hello, world! It's 2026: caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 <|endoftext|>\n\n  x\xF0\x9F\x98\x80";
  const auto ids = (*tokenizer)->Encode(kSample);
  (void)(*tokenizer)->Decode(ids);
  return 0;
}
