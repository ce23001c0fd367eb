// What every client call to the coordinator carries: a deadline, so that no call waits forever
// on a coordinator that is gone, and the bearer token the coordinator checks
// ("authorization: Bearer <token>", server/rpc_guard.h).
#pragma once

#include <string>
#include <string_view>

#include "absl/time/time.h"

namespace grpc {
class ClientContext;
}  // namespace grpc

namespace bitsweep::rpc {

// The metadata key of the bearer token (gRPC keys are lower case).
inline constexpr char kAuthorizationKey[] = "authorization";
// The deadline of an ordinary call (the CLI's and the worker's).
inline constexpr absl::Duration kDefaultCallTimeout = absl::Seconds(30);

// "Bearer <token>".
std::string BearerAuthorization(std::string_view token);

// Prepares a fresh `context` for one call: a deadline `timeout` from now (none when `timeout` is
// zero or negative) and, when `token` is not empty, "authorization: Bearer <token>".
void PrepareCall(grpc::ClientContext* context, std::string_view token,
                 absl::Duration timeout = kDefaultCallTimeout);

}  // namespace bitsweep::rpc
