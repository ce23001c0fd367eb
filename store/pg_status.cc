#include "store/pg_status.h"

#include <pqxx/pqxx>

namespace bitsweep::store {

namespace {

// SQLSTATE class 57P (operator intervention: admin_shutdown, crash_shutdown, cannot_connect_now)
// and 08 (connection exception) mean the server went away under us.
bool IsUnavailableState(const std::string& sqlstate) {
  return sqlstate.rfind("57P", 0) == 0 || sqlstate.rfind("08", 0) == 0;
}

}  // namespace

Status StatusFromCurrentException(const std::string& what) {
  try {
    throw;
  } catch (const pqxx::in_doubt_error& e) {
    return absl::UnavailableError(what + ": commit outcome unknown (retry is safe): " + e.what());
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(what + ": database unavailable: " + e.what());
  } catch (const pqxx::transaction_rollback& e) {
    return absl::AbortedError(what + ": transaction aborted by conflicts: " + e.what());
  } catch (const pqxx::unique_violation& e) {
    return absl::AlreadyExistsError(what + ": " + e.what());
  } catch (const pqxx::integrity_constraint_violation& e) {
    return absl::InvalidArgumentError(what + ": " + e.what());
  } catch (const pqxx::data_exception& e) {
    return absl::InvalidArgumentError(what + ": " + e.what());
  } catch (const pqxx::sql_error& e) {
    if (IsUnavailableState(e.sqlstate())) {
      return absl::UnavailableError(what + ": database unavailable (" + e.sqlstate() +
                                    "): " + e.what());
    }
    return absl::InternalError(what + ": SQL error (" + e.sqlstate() + "): " + e.what() +
                               " in query: " + e.query());
  } catch (const std::exception& e) {
    return absl::InternalError(what + ": " + e.what());
  } catch (...) {
    return absl::InternalError(what + ": unknown exception");
  }
}

bool CurrentExceptionBreaksConnection() {
  try {
    throw;
  } catch (const pqxx::broken_connection&) {
    return true;
  } catch (const pqxx::in_doubt_error&) {
    return true;
  } catch (const pqxx::sql_error& e) {
    return IsUnavailableState(e.sqlstate());
  } catch (...) {
    return false;
  }
}

}  // namespace bitsweep::store
