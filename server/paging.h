// Paging of the coordinator's listings, shared by the gRPC Coordinator service and the JSON API
// (proto/bitsweep/v1/coordinator.proto, server/http_api.h): page sizes (a default, a cap),
// opaque page tokens bound to one listing and one filter, and a byte budget per page so that no
// response grows past kMaxPageBytes of items whatever the items hold. Pages are keyset pages over
// ids (store/job_store.h *Page). Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep::server {

inline constexpr int32_t kDefaultPageSize = 100;
inline constexpr int32_t kMaxPageSize = 1000;
// A page ends before the item that would take its items past this many bytes (the first item
// always fits): half of 1 MiB, so a response stays under 1 MB with room for its envelope.
inline constexpr size_t kMaxPageBytes = 512 * 1024;

// The page size a request asks for: `page_size`, else `legacy_limit` (the deprecated `limit`
// fields), else kDefaultPageSize; above kMaxPageSize reads as kMaxPageSize. INVALID_ARGUMENT
// naming `field` for a negative one.
StatusOr<int32_t> PageSize(int32_t page_size, int32_t legacy_limit = 0,
                           std::string_view field = "page_size");

// A listing and its filter: a token made for one is refused by every other.
struct PageKey {
  std::string listing;  // "sweeps", "jobs", "results"
  std::string filter;   // e.g. "sweep=3,state=FAILED"
};

// The token of the page after the item at `position` (the last id served).
std::string MakePageToken(const PageKey& key, int64_t position);
// The position `token` continues from; 0 for "" (the first page). INVALID_ARGUMENT naming
// `field` when it is not a token of this listing, or was made for another filter.
StatusOr<int64_t> ReadPageToken(const std::string& token, const PageKey& key,
                                std::string_view field = "page_token");

// Fills one page from `items`, read from the store with one item more than `size` (so that a
// full page knows whether more follow): each item as `convert(item)` (a message or JSON value)
// of `bytes(converted)` bytes, handed to `push` until `size` items or kMaxPageBytes. Returns the
// next page's token ("" when `items` ran out); `position(item)` is an item's id.
template <typename Item, typename Convert, typename Bytes, typename Push, typename Position>
std::string FillPage(const std::vector<Item>& items, size_t size, const PageKey& key,
                     Convert convert, Bytes bytes, Push push, Position position) {
  size_t used = 0, taken = 0;
  for (; taken < items.size() && taken < size; ++taken) {
    auto converted = convert(items[taken]);
    const size_t n = bytes(converted) + 8;  // + the field's tag and length
    if (taken > 0 && used + n > kMaxPageBytes) break;
    used += n;
    push(std::move(converted));
  }
  return taken == items.size() ? "" : MakePageToken(key, position(items[taken - 1]));
}

}  // namespace bitsweep::server
