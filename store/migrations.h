// Versioned schema migrations: store/schema/NNN_name.sql, embedded into the binary at build time.
//
// Migrate() applies, in version order, every migration not yet recorded in schema_version, each
// in one transaction that also records it. Each transaction first takes a transaction-scoped
// advisory lock, so coordinators starting at once apply every file exactly once. Idempotent; when
// every migration is already recorded it only reads (a read-only database is enough).
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::store {

namespace internal {
struct Migration {
  int version;
  const char* name;
  const char* sql;
};
// Generated from store/schema/*.sql (store/embed_sql.cmake), ascending versions.
const std::vector<Migration>& Migrations();
}  // namespace internal

// Applies pending migrations over a fresh connection to `conninfo`; returns the schema version.
// `up_to` stops after that version (tests build an older schema to check what upgrades it).
StatusOr<int> Migrate(const std::string& conninfo, int up_to = std::numeric_limits<int>::max());

}  // namespace bitsweep::store
