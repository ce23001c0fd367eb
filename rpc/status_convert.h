// absl::Status <-> grpc::Status. The canonical codes are the same numbers in both libraries, so
// the mapping is 1:1 both ways and the message is kept: an error crosses a process boundary
// with the code its caller's retry decision reads. Pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include <string_view>

#include "common/status.h"

namespace bitsweep::rpc {

// What a service handler returns for `status`.
grpc::Status ToGrpcStatus(const Status& status);

// What a client makes of a call's answer. With `call` ("Register"), the message reads
// "Register: <the server's message>", so a caller's log names the call that failed.
Status FromGrpcStatus(const grpc::Status& status);
Status FromGrpcStatus(const grpc::Status& status, std::string_view call);

}  // namespace bitsweep::rpc
