#include "server/paging.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bitsweep::server {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A token is "<listing>|<filter>|<position>" in web-safe base64 without padding: opaque to
// clients (the proto says so) and safe in a URL's query unescaped. Filters never hold '|'
// (numbers and state names).
constexpr char kSeparator = '|';

}  // namespace

StatusOr<int32_t> PageSize(int32_t page_size, int32_t legacy_limit, std::string_view field) {
  if (page_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(field), ": must be >= 0 (0 = ", kDefaultPageSize, "), got ", page_size));
  }
  if (legacy_limit < 0) {
    return absl::InvalidArgumentError(absl::StrCat("limit: must be >= 0, got ", legacy_limit));
  }
  const int32_t asked = page_size != 0 ? page_size : legacy_limit;
  return asked == 0 ? kDefaultPageSize : std::min(asked, kMaxPageSize);
}

std::string MakePageToken(const PageKey& key, int64_t position) {
  return absl::WebSafeBase64Escape(absl::StrCat(key.listing, std::string(1, kSeparator), key.filter,
                                                std::string(1, kSeparator), position));
}

StatusOr<int64_t> ReadPageToken(const std::string& token, const PageKey& key,
                                std::string_view field) {
  if (token.empty()) return 0;
  std::string plain;
  if (!absl::WebSafeBase64Unescape(token, &plain)) plain.clear();
  const size_t last = plain.rfind(kSeparator);
  const size_t first = plain.find(kSeparator);
  int64_t position = 0;
  if (first == std::string::npos || first == last || plain.compare(0, first, key.listing) != 0 ||
      !absl::SimpleAtoi(plain.substr(last + 1), &position) || position <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        AV(field), ": '", token, "' is not a page token of this listing (", key.listing,
        "); send the next_page_token of its previous page, or \"\" for the first"));
  }
  const std::string filter = plain.substr(first + 1, last - first - 1);
  if (filter != key.filter) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(field), ": the token continues the listing with filter '", filter,
                     "', not this request's '", key.filter, "'"));
  }
  return position;
}

}  // namespace bitsweep::server
