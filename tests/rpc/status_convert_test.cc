#include "rpc/status_convert.h"

#include <catch2/catch.hpp>

namespace bitsweep::rpc {
namespace {

const std::pair<absl::StatusCode, grpc::StatusCode> kPairs[] = {
    {absl::StatusCode::kCancelled, grpc::StatusCode::CANCELLED},
    {absl::StatusCode::kUnknown, grpc::StatusCode::UNKNOWN},
    {absl::StatusCode::kInvalidArgument, grpc::StatusCode::INVALID_ARGUMENT},
    {absl::StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED},
    {absl::StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND},
    {absl::StatusCode::kAlreadyExists, grpc::StatusCode::ALREADY_EXISTS},
    {absl::StatusCode::kPermissionDenied, grpc::StatusCode::PERMISSION_DENIED},
    {absl::StatusCode::kResourceExhausted, grpc::StatusCode::RESOURCE_EXHAUSTED},
    {absl::StatusCode::kFailedPrecondition, grpc::StatusCode::FAILED_PRECONDITION},
    {absl::StatusCode::kAborted, grpc::StatusCode::ABORTED},
    {absl::StatusCode::kOutOfRange, grpc::StatusCode::OUT_OF_RANGE},
    {absl::StatusCode::kUnimplemented, grpc::StatusCode::UNIMPLEMENTED},
    {absl::StatusCode::kInternal, grpc::StatusCode::INTERNAL},
    {absl::StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE},
    {absl::StatusCode::kDataLoss, grpc::StatusCode::DATA_LOSS},
    {absl::StatusCode::kUnauthenticated, grpc::StatusCode::UNAUTHENTICATED},
};

TEST_CASE("every absl status code becomes the gRPC code of the same name with its message") {
  for (const auto& [absl_code, grpc_code] : kPairs) {
    const grpc::Status s = ToGrpcStatus(Status(absl_code, "sweep.yaml:3:5: wbits"));
    CHECK(s.error_code() == grpc_code);
    CHECK(s.error_message() == "sweep.yaml:3:5: wbits");
  }
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST_CASE("every gRPC status code becomes the absl code of the same name, prefixed by the call") {
  for (const auto& [absl_code, grpc_code] : kPairs) {
    const Status plain = FromGrpcStatus(grpc::Status(grpc_code, "worker_id: 7 is not registered"));
    CHECK(plain.code() == absl_code);
    CHECK(plain.message() == "worker_id: 7 is not registered");
    const Status named = FromGrpcStatus(grpc::Status(grpc_code, "lease lost"), "Heartbeat");
    CHECK(named.code() == absl_code);
    CHECK(named.message() == "Heartbeat: lease lost");
  }
  CHECK(FromGrpcStatus(grpc::Status::OK).ok());
  CHECK(FromGrpcStatus(grpc::Status::OK, "Register").ok());
}

}  // namespace
}  // namespace bitsweep::rpc
