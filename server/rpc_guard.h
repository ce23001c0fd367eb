// RpcGuard: what every RPC handler of one service does around its body: check the bearer
// token, convert the body's absl::Status to a grpc::Status (codes 1:1), and record
// bitsweep_rpc_duration_seconds{method,code}. Thread-safe (immutable after construction).
#pragma once

#include <grpcpp/server_context.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "rpc/status_convert.h"
#include "server/metrics.h"
#include "server/server_config.h"

namespace bitsweep::server {

// Whether an Authorization value ("Bearer <token>") carries one of `tokens`; compares in
// constant time, so the time taken does not reveal how much of a guessed token was right.
// Shared by the gRPC services and the HTTP API, which accept the same client tokens.
bool BearerTokenMatches(std::string_view authorization, const std::vector<std::string>& tokens);

class RpcGuard {
 public:
  // `tokens` empty: no authentication; else one token or a comma-separated list of tokens, any
  // of which is accepted (rotation). `viewer_tokens` (same form) are accepted too, but only by
  // RunRead: the read-only role. `metrics` must outlive the guard; `now` is the services' clock
  // (ServiceDeps::now), which times the calls.
  RpcGuard(ServerMetrics* metrics, const std::string& tokens, std::function<absl::Time()> now,
           const std::string& viewer_tokens = "")
      : metrics_(metrics),
        tokens_(SplitTokenList(tokens)),
        viewer_tokens_(SplitTokenList(viewer_tokens)),
        now_(std::move(now)) {}

  // UNAUTHENTICATED unless `context` carries "authorization: Bearer <t>" for one of the tokens
  // (or, when `read_only`, of the viewer tokens); PERMISSION_DENIED for a viewer token on a call
  // that is not `read_only`.
  grpc::Status Authenticate(const grpc::ServerContext& context, bool read_only = false) const;

  // Runs `body` (returning absl::Status) after authentication, and records the outcome.
  template <typename Body>
  grpc::Status Run(const std::string& method, grpc::ServerContext* context, Body&& body) const {
    return RunAs(method, context, /*read_only=*/false, std::forward<Body>(body));
  }
  // The same for a call that changes nothing: viewer tokens are accepted too.
  template <typename Body>
  grpc::Status RunRead(const std::string& method, grpc::ServerContext* context,
                       Body&& body) const {
    return RunAs(method, context, /*read_only=*/true, std::forward<Body>(body));
  }

  void Record(const std::string& method, const grpc::Status& status, double seconds) const;

 private:
  template <typename Body>
  grpc::Status RunAs(const std::string& method, grpc::ServerContext* context, bool read_only,
                     Body&& body) const {
    const absl::Time start = now_();
    grpc::Status status = Authenticate(*context, read_only);
    if (status.ok()) status = rpc::ToGrpcStatus(body());
    Record(method, status, absl::ToDoubleSeconds(now_() - start));
    return status;
  }

  ServerMetrics* metrics_;
  std::vector<std::string> tokens_;
  std::vector<std::string> viewer_tokens_;
  std::function<absl::Time()> now_;
};

}  // namespace bitsweep::server
