#include "common/wikitext.h"

namespace bitsweep {

std::string JoinWikiTextRows(const std::string& raw) {
  std::string text;
  text.reserve(raw.size() + raw.size() / 8);
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    const size_t nl = raw.find('\n', pos);
    const size_t end = nl == std::string::npos ? raw.size() : nl + 1;
    if (!first) text += "\n\n";
    first = false;
    if (raw.find_first_not_of(" \t\r\n\v\f", pos) < end) text.append(raw, pos, end - pos);
    pos = end;
  }
  return text;
}

}  // namespace bitsweep
