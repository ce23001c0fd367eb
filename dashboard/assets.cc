#include "dashboard/assets.h"

#include <utility>
#include <vector>

namespace bitsweep::dashboard {
namespace internal {
const std::vector<std::pair<std::string_view, std::string_view>>& EmbeddedAssets();
}  // namespace internal
namespace {

std::string_view ContentType(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

const std::vector<Asset>& Assets() {
  static const auto* assets = [] {
    auto* out = new std::vector<Asset>;
    for (const auto& [name, data] : internal::EmbeddedAssets()) {
      out->push_back({name, ContentType(name), data});
    }
    return out;
  }();
  return *assets;
}

}  // namespace

const Asset* FindAsset(std::string_view name) {
  for (const Asset& a : Assets()) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

}  // namespace bitsweep::dashboard
