#include "rpc/call_context.h"

#include <grpcpp/client_context.h>

#include <chrono>
#include <string>

namespace bitsweep::rpc {

std::string BearerAuthorization(std::string_view token) {
  return std::string("Bearer ").append(token);
}

void PrepareCall(grpc::ClientContext* context, std::string_view token, absl::Duration timeout) {
  if (timeout > absl::ZeroDuration()) {
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
  }
  if (!token.empty()) context->AddMetadata(kAuthorizationKey, BearerAuthorization(token));
}

}  // namespace bitsweep::rpc
