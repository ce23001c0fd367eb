// Internal to model/: the UTF-8, Unicode and regex-dialect helpers of the tokenizer
// (model/tokenizer.cc, model/bpe_tokenizer.cc), each matching what Hugging Face `tokenizers`
// does. Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace bitsweep::model {

// Appends the UTF-8 encoding of code point `cp` to `out`.
void AppendUtf8(uint32_t cp, std::string* out);
// The code point at s[i], advancing i; -1 (and one byte) for a malformed sequence.
int32_t NextCodepoint(std::string_view s, size_t* i);
// The code point that ends s (s non-empty), or -1 when s ends in a malformed sequence.
int32_t LastCodepoint(std::string_view s);
// Rust regex's \s, which `tokenizers` uses for lstrip/rstrip: the White_Space property.
bool IsWhiteSpace(int32_t cp);
// Rust regex's \w, which `tokenizers` uses for single_word (see the definition for the details).
bool IsWordChar(int32_t cp);
// NFC of `s`; input that is not valid UTF-8 is returned unchanged.
std::string Nfc(std::string_view s);
// The Oniguruma pattern of a tokenizer.json rewritten so that PCRE2 gives it Oniguruma's meaning
// (\s \S \w \W \h \H \v).
std::string OnigurumaToPcre2(const std::string& pattern);
// GPT-2 bytes_to_unicode: the code point each byte is spelled with in a byte-level vocabulary.
std::array<uint32_t, 256> ByteToCodepoint();

}  // namespace bitsweep::model
