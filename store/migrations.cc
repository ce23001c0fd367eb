#include "store/migrations.h"

#include <pqxx/pqxx>
#include <set>

#include "store/internal/sql.h"
#include "store/pg_status.h"

namespace bitsweep::store {

namespace {
// pg_advisory_xact_lock key: "bitsweep" in ASCII, shared by every coordinator.
constexpr long long kMigrationLockKey = 0x6269747377656570LL;
}  // namespace

StatusOr<int> Migrate(const std::string& conninfo, int up_to) {
  int version = 0;
  std::string current = "connect";
  try {
    pqxx::connection conn(conninfo);
    {
      // Every migration already recorded: nothing to lock or write, so a read-only database
      // (`bitsweep local --results`) is enough. Each migration commits with its row, so a
      // recorded one is whole.
      current = "reading schema_version";
      pqxx::nontransaction read(conn);
      if (read.exec("SELECT to_regclass('schema_version') IS NOT NULL")[0][0].as<bool>()) {
        std::set<int> applied;
        for (const auto& row : read.exec("SELECT version FROM schema_version")) {
          applied.insert(row[0].as<int>());
        }
        int last = 0;
        bool all = true;
        for (const internal::Migration& m : internal::Migrations()) {
          if (m.version > up_to) break;
          all = all && applied.count(m.version) > 0;
          last = m.version;
        }
        if (all) return last;
      }
    }
    for (const internal::Migration& m : internal::Migrations()) {
      if (m.version > up_to) break;
      current = std::string("migration ") + m.name;
      pqxx::work tx(conn);
      internal::Exec(tx, "SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      // Inside the lock: concurrent CREATE TABLE IF NOT EXISTS would race on pg_type.
      tx.exec(
          "CREATE TABLE IF NOT EXISTS schema_version ("
          " version integer PRIMARY KEY, name text NOT NULL,"
          " applied_at timestamptz NOT NULL DEFAULT now())");
      pqxx::result done =
          internal::Exec(tx, "SELECT 1 FROM schema_version WHERE version = $1", m.version);
      if (done.empty()) {
        tx.exec(m.sql);
        internal::Exec(tx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.version,
                       std::string(m.name));
      }
      tx.commit();
      version = m.version;
    }
  } catch (...) {
    return StatusFromCurrentException(current);
  }
  return version;
}

}  // namespace bitsweep::store
