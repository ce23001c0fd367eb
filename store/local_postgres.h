// LocalPostgres: a private PostgreSQL 15 server for tests, benchmarks and the demo.
//
// Start() runs initdb into `data_dir` (when it holds no cluster yet), listens on 127.0.0.1 only
// at a free port with its unix socket inside the data directory, and waits until the server
// accepts connections. The destructor stops it (pg_ctl stop -m fast). When the process runs as
// root, initdb and postgres run as the `postgres` system user (they refuse root) and the data
// directory is chowned to it. This target does not link libpqxx (the CLI's demo uses it).
// Not thread-safe: one owner calls Start/Stop/Restart.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::store {

struct LocalPostgresOptions {
  // Where the cluster lives; created if missing. Reused (no initdb) if it already holds one.
  std::string data_dir;
  // Directory of initdb / pg_ctl / postgres. Empty: `pg_config --bindir`, else
  // /usr/lib/postgresql/15/bin.
  std::string bin_dir;
  // Listening port on 127.0.0.1; 0 picks a free one at the first start (kept by Restart).
  int port = 0;
  // false trades durability for speed (fsync, synchronous_commit and full_page_writes off):
  // right for tests and benchmarks, never for real sweeps.
  bool fsync = true;
  int max_connections = 200;
  // Seconds to wait for the server to accept connections (and to stop).
  int timeout_s = 60;
  // Every transaction is read-only by default (default_transaction_read_only): for answering
  // questions about a stopped state without changing it.
  bool read_only = false;
  // The server stops when the process that started it dies, however it dies (SIGKILL
  // included): a guardian process, in a session of its own and deaf to the terminal's signals,
  // waits for a pipe from this process to close and then runs `pg_ctl stop -m fast`.
  bool stop_with_owner = false;

  Status Validate() const;
};

class LocalPostgres {
 public:
  // initdb (if needed) and start; the server runs until Stop() or destruction.
  static StatusOr<std::unique_ptr<LocalPostgres>> Start(const LocalPostgresOptions& options);
  ~LocalPostgres();
  LocalPostgres(const LocalPostgres&) = delete;
  LocalPostgres& operator=(const LocalPostgres&) = delete;

  // libpq conninfo of the `postgres` database: "host=127.0.0.1 port=N user=bitsweep
  // dbname=postgres connect_timeout=5".
  std::string conninfo() const { return ConnInfo("postgres"); }
  std::string ConnInfo(const std::string& dbname) const;
  int port() const { return port_; }
  // The postmaster's pid (from postmaster.pid), 0 when the server is not running.
  pid_t pid() const;
  const std::string& data_dir() const { return options_.data_dir; }
  bool running() const { return running_; }

  // Creates database `name` (createdb) and returns its conninfo. REQUIRES: running().
  StatusOr<std::string> CreateDatabase(const std::string& name);

  // pg_ctl stop -m fast; OK if already stopped.
  Status Stop();
  // Starts the stopped server again on the same data directory and port.
  Status StartAgain();
  // Stop() then StartAgain(): what fault tests use to cut every connection.
  Status Restart();

 private:
  explicit LocalPostgres(LocalPostgresOptions options) : options_(std::move(options)) {}
  Status InitDb();
  Status StartServer();
  // options_.stop_with_owner: forks the guardian (once).
  Status StartGuardian();
  // Runs argv to completion (as the postgres user when as_server_user and we are root);
  // an error names `what`, the exit status and the tail of the command's output.
  Status Run(const std::string& what, const std::vector<std::string>& argv, bool as_server_user);
  std::string Bin(const std::string& name) const;

  LocalPostgresOptions options_;
  int port_ = 0;
  bool running_ = false;
  bool as_postgres_user_ = false;  // running as root: drop to the postgres system user
  int guardian_fd_ = -1;           // the write end of the guardian's pipe
  pid_t guardian_pid_ = -1;
};

}  // namespace bitsweep::store
