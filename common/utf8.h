// UTF-8 validation for text that crosses into JSON, PostgreSQL or protobuf (all of which require
// valid UTF-8 and throw, fail or mangle otherwise). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace bitsweep {

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(std::string_view s);
// The offset of the first byte of `s` that is not part of a well-formed sequence; s.size() when
// there is none.
size_t FirstInvalidUtf8(std::string_view s);

}  // namespace bitsweep
