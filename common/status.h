// Error handling for every module boundary in bitsweep: errors are values with a canonical code
// (absl::Status), so a caller decides on a retry by the code, never by parsing a message.
//
// Public functions of model/, eval/, quant/ return absl::Status or absl::StatusOr<T>.
// Exceptions from third-party libraries (c10::Error, nlohmann::json::exception) are caught at
// the edge of the library that calls them and turned into a Status whose message names the
// file, tensor, key or line at fault.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace bitsweep {

using absl::Status;
using absl::StatusOr;

}  // namespace bitsweep

#define BITSWEEP_CONCAT_INNER_(a, b) a##b
#define BITSWEEP_CONCAT_(a, b) BITSWEEP_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status bitsweep_status_ = (expr);        \
    if (!bitsweep_status_.ok()) return bitsweep_status_; \
  } while (0)

// ASSIGN_OR_RETURN(auto x, F()): evaluates F() (a StatusOr), returns its status on error,
// otherwise moves the value into `lhs`.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(BITSWEEP_CONCAT_(bitsweep_statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
