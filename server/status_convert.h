// absl::Status -> grpc::Status. The canonical codes are the same numbers in both libraries, so
// the mapping is 1:1 and the message is kept (STYLE.md P7).
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace bitsweep::server {

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace bitsweep::server
