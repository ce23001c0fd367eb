// JobStore::Open and the frame every PgJobStore call runs in (Transact): a pooled connection,
// one transaction or one autocommit statement, retries and the P7 error mapping.
#include "store/job_store.h"

#include "store/internal/pg_job_store.h"
#include "store/internal/sql.h"
#include "store/migrations.h"
#include "store/pg_status.h"

namespace bitsweep::store {

Status JobStoreOptions::Validate() const {
  if (max_connections < 1) {
    return absl::InvalidArgumentError("JobStoreOptions.max_connections must be >= 1");
  }
  if (backoff_base < absl::ZeroDuration() || backoff_max < backoff_base) {
    return absl::InvalidArgumentError("JobStoreOptions: need 0 <= backoff_base <= backoff_max");
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& conninfo,
                                                   const JobStoreOptions& options) {
  RETURN_IF_ERROR(options.Validate());
  RETURN_IF_ERROR(Migrate(conninfo).status());
  return std::unique_ptr<JobStore>(new internal::PgJobStore(conninfo, options));
}

namespace internal {

PgJobStore::PgJobStore(const std::string& conninfo, const JobStoreOptions& options)
    : options_(options),
      pool_(conninfo, options.max_connections),
      leases_([this](const std::vector<LeaseRequest>& r) { return ServeLeases(r); }) {}

Status PgJobStore::Transact(const std::string& what, const Body& body, Mode mode) {
  constexpr int kMaxTries = 5;
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<pqxx::connection> conn;
    bool acquired = false;  // Acquire() gives its slot back itself when connecting fails
    // A connection in an unknown state is never reused.
    auto give_back = [&](bool keep) {
      if (acquired) pool_.Release(keep ? std::move(conn) : nullptr);
      acquired = false;
    };
    try {
      conn = pool_.Acquire();
      acquired = true;
      Status st;
      if (mode == Mode::kOneStatement) {
        pqxx::nontransaction tx(*conn);
        st = body(tx);
      } else {
        pqxx::work tx(*conn);
        st = body(tx);
        if (st.ok()) {
          tx.commit();
        } else {
          tx.abort();
        }
      }
      give_back(true);
      return st;
    } catch (const pqxx::transaction_rollback&) {
      give_back(true);
      if (attempt < kMaxTries) continue;
      return StatusFromCurrentException(what);
    } catch (const pqxx::in_doubt_error&) {
      give_back(false);  // the commit may have landed: only the caller may retry
      pool_.DiscardIdle();
      return StatusFromCurrentException(what);
    } catch (const pqxx::broken_connection&) {
      give_back(false);
      // A connection that broke was most likely cut by a server restart, which cut every other
      // idle one as well: drop them all, so that the retry below (and every caller after it)
      // connects afresh instead of drawing the next dead connection from the pool.
      pool_.DiscardIdle();
      // Before COMMIT nothing was committed, so one retry on a fresh connection is safe; it
      // turns a pooled connection that died with a server restart into a reconnect. (An
      // autocommit statement may have landed: Heartbeat and reads repeat harmlessly, and a
      // repeated Lease at worst leaves one job leased to nobody until its lease expires.)
      if (attempt == 1) continue;
      return StatusFromCurrentException(what);
    } catch (...) {
      // The server's goodbye (SQLSTATE 57P01 admin_shutdown, class 08) surfaces as an SQL error
      // rather than broken_connection when it was read before the socket's end: the same case.
      const bool broken = CurrentExceptionBreaksConnection();
      give_back(!broken);
      if (broken) pool_.DiscardIdle();
      if (broken && attempt == 1) continue;
      return StatusFromCurrentException(what);
    }
  }
}

Status PgJobStore::Ping() {
  return Transact(
      "Ping",
      [](pqxx::transaction_base& tx) -> Status {
        tx.exec("SELECT 1");
        return absl::OkStatus();
      },
      Mode::kOneStatement);
}

StatusOr<std::string> PgJobStore::ClusterId() {
  std::string id;
  RETURN_IF_ERROR(Transact(
      "ClusterId",
      [&](pqxx::transaction_base& tx) -> Status {
        id = Exec1(tx, "SELECT id FROM cluster")[0].as<std::string>();
        return absl::OkStatus();
      },
      Mode::kOneStatement));
  return id;
}

}  // namespace internal
}  // namespace bitsweep::store
