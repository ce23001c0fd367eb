// libpqxx exceptions -> absl::Status (errors cross module boundaries as values, never as
// exceptions), the code chosen for the caller's retry decision.
// Only store/ includes <pqxx/...>; this header does not.
#pragma once

#include <exception>
#include <string>

#include "common/status.h"

namespace bitsweep::store {

// Call inside a catch block: maps the exception being handled. `what` names the operation.
//   broken_connection, in_doubt_error, too_many_connections, admin shutdown -> UNAVAILABLE
//   serialization_failure, deadlock_detected (retries spent)              -> ABORTED
//   data_exception, check / not-null / foreign-key violation              -> INVALID_ARGUMENT
//   unique_violation                                                      -> ALREADY_EXISTS
//   anything else                                                         -> INTERNAL
Status StatusFromCurrentException(const std::string& what);

// True when the exception being handled says the connection can no longer be used.
bool CurrentExceptionBreaksConnection();

}  // namespace bitsweep::store
