// gRPC helpers for the tests that talk to a real coordinator over loopback. Header-only, so
// that only the test binaries that link gRPC include it.
#pragma once

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "rpc/call_context.h"

namespace bitsweep::testing {

// A client context with a deadline (no test hangs on a broken server) and, when `token` is not
// empty, "authorization: Bearer <token>".
inline std::unique_ptr<grpc::ClientContext> RpcContext(const std::string& token = "",
                                                       int seconds = 20) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  rpc::PrepareCall(ctx.get(), token, absl::Seconds(seconds));
  return ctx;
}

// The answer of a generic unary call: its status and the response bytes.
struct Answer {
  grpc::Status status;
  std::string bytes;
};

// Calls `method` ("/package.Service/Method") with serialized request bytes, no metadata.
inline Answer UnaryCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                        const std::string& request_bytes, int timeout_s = 10) {
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  auto call = stub.PrepareUnaryCall(&ctx, method, request, &cq);
  call->StartCall();
  grpc::ByteBuffer response;
  Answer answer;
  call->Finish(&response, &answer.status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok) || !ok) {
    answer.status = grpc::Status(grpc::StatusCode::UNKNOWN, "the call did not complete");
  }
  std::vector<grpc::Slice> slices;
  if (answer.status.ok() && response.Dump(&slices).ok()) {
    for (const auto& s : slices) {
      answer.bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return answer;
}

// grpc.health.v1.Health/Check for "" (the whole server), as the kubelet's gRPC probe sends it:
// no metadata.
inline Answer HealthCheck(const std::shared_ptr<grpc::Channel>& channel, int timeout_s = 10) {
  return UnaryCall(channel, "/grpc.health.v1.Health/Check", "", timeout_s);
}
inline const std::string kServing("\x08\x01", 2);  // HealthCheckResponse{status: SERVING}

}  // namespace bitsweep::testing

// REQUIRE that a grpc::Status is OK, printing its code and message when it is not.
#define REQUIRE_RPC_OK(expr)                               \
  do {                                                     \
    const grpc::Status st_ = (expr);                       \
    INFO(st_.error_code() << ": " << st_.error_message()); \
    REQUIRE(st_.ok());                                     \
  } while (0)
