#include "model/tokenizer_unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace bitsweep::model {
namespace {

// Oniguruma's Unicode \s (what `tokenizers` compiles the pattern with): the White_Space
// property. PCRE2's UCP \s also takes U+180E (via \h), which Unicode stopped calling a space.
constexpr char kOnigSpaceItems[] = R"(\x{09}-\x{0d}\x{85}\p{Z})";
// Oniguruma's Unicode \w: Letter | Mark | Decimal_Number | Connector_Punctuation. PCRE2 10.42's
// UCP \w is Letter | Number | "_".
constexpr char kOnigWordItems[] = R"(\p{L}\p{M}\p{Nd}\p{Pc})";

}  // namespace

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

}  // namespace bitsweep::model
