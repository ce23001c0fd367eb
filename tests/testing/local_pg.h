// Fixture for [pg] tests: one private PostgreSQL per test binary (store/local_postgres), started
// on first use under the build tree and stopped at exit; each test gets a fresh database. Every
// server started here stops with its test process however that ends, a SIGKILL from ctest's
// timeout included (LocalPostgresOptions::stop_with_owner: the guardian of `bitsweep local`).
#pragma once

#include <memory>
#include <string>

#include "store/local_postgres.h"

namespace bitsweep::testing {

// The binary's server (started on first call). FAILs the current test if it cannot start.
store::LocalPostgres& LocalPg();

// Creates a fresh, empty database and returns its conninfo (names are unique per process).
std::string FreshDatabase();

// A private PostgreSQL of the calling test under <dir>/pg, for tests that restart it or hand
// it to the processes they start (fsync off: tests restart it, they never crash the machine).
// FAILs the current test if it cannot start.
std::unique_ptr<store::LocalPostgres> StartPostgres(const std::string& dir);

}  // namespace bitsweep::testing
