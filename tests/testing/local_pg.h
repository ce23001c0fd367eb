// Fixture for [pg] tests: one private PostgreSQL per test binary (store/local_postgres), started
// on first use under the build tree and stopped at exit; each test gets a fresh database.
#pragma once

#include <string>

#include "store/local_postgres.h"

namespace bitsweep::testing {

// The binary's server (started on first call). FAILs the current test if it cannot start.
store::LocalPostgres& LocalPg();

// Creates a fresh, empty database and returns its conninfo (names are unique per process).
std::string FreshDatabase();

}  // namespace bitsweep::testing
