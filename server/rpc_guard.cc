#include "server/rpc_guard.h"

#include <algorithm>
#include <string_view>

#include "rpc/call_context.h"

namespace bitsweep::server {
namespace {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

bool BearerTokenMatches(std::string_view authorization, const std::vector<std::string>& tokens) {
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view given = authorization.substr(std::min(kBearer.size(), authorization.size()));
  // Every token is compared (no early exit), so the time taken reveals at most how many there are.
  bool accepted = false;
  for (const std::string& token : tokens) accepted |= ConstantTimeEquals(given, token);
  return authorization.substr(0, kBearer.size()) == kBearer && accepted;
}

grpc::Status RpcGuard::Authenticate(const grpc::ServerContext& context, bool read_only) const {
  if (tokens_.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(rpc::kAuthorizationKey);
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string_view authorization(it->second.data(), it->second.size());
  if (BearerTokenMatches(authorization, tokens_)) return grpc::Status::OK;
  if (BearerTokenMatches(authorization, viewer_tokens_)) {
    if (read_only) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        "the viewer token is read-only: this call needs the client token");
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
}

void RpcGuard::Record(const std::string& method, const grpc::Status& status, double seconds) const {
  const std::string code =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  metrics_->ObserveRpc(method, code, seconds);
}

}  // namespace bitsweep::server
