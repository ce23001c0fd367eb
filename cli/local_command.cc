#include "cli/local_command.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/client_commands.h"
#include "cli/output.h"
#include "common/cpus.h"
#include "common/path_roots.h"
#include "common/process.h"
#include "common/sweep.h"
#include "store/local_postgres.h"

namespace bitsweep::cli {
namespace {

namespace fs = std::filesystem;

// Set by SIGINT/SIGTERM during `bitsweep local`: stop watching and tear everything down.
std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted = true; }

// How often, and how far apart, the sweep is submitted while the new coordinator is starting.
constexpr int kSubmitAttempts = 100;
constexpr std::chrono::milliseconds kSubmitRetryDelay{300};
// A stopped child gets this long after SIGTERM (polled every kStopPoll) before SIGKILL.
constexpr int kStopPolls = 100;
constexpr std::chrono::milliseconds kStopPoll{100};

std::string ExeDir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < kStopPolls; ++i) {
    if (waitpid(pid, nullptr, WNOHANG) == pid) return;
    std::this_thread::sleep_for(kStopPoll);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

// The processes `bitsweep local` started. PostgreSQL is not one of them: it stops when its
// LocalPostgres is destroyed, after these.
struct Children {
  pid_t coordinator = -1;
  std::vector<pid_t> workers;

  // Workers first, so none reports to a coordinator that is already gone.
  void Stop() {
    for (pid_t w : workers) cli::Stop(w);
    cli::Stop(coordinator);
  }
};

// A private PostgreSQL in `state`/postgres with the database "bitsweep"; `*conninfo` is how to
// reach that database.
StatusOr<std::unique_ptr<store::LocalPostgres>> StartPostgres(const fs::path& state,
                                                              std::string* conninfo) {
  store::LocalPostgresOptions po;
  po.data_dir = (state / "postgres").string();
  ASSIGN_OR_RETURN(std::unique_ptr<store::LocalPostgres> pg, store::LocalPostgres::Start(po));
  *conninfo = pg->ConnInfo("bitsweep");
  {
    auto created = pg->CreateDatabase("bitsweep");  // fails harmlessly when it exists
    if (created.ok()) *conninfo = *created;
  }
  std::fprintf(stderr, "local: PostgreSQL on 127.0.0.1:%d\n", pg->port());
  return pg;
}

// Starts the coordinator on free loopback ports; returns its gRPC address.
std::string StartCoordinator(const std::string& bin, const std::string& conninfo,
                             const fs::path& state, const std::vector<std::string>& root_flags,
                             Children* children) {
  const int port = FreePort();
  const std::string addr = absl::StrCat("127.0.0.1:", port);
  const int metrics_port = FreePort();
  const int http_port = FreePort();
  std::vector<std::string> argv = {bin,
                                   "--listen",
                                   addr,
                                   "--db",
                                   conninfo,
                                   "--metrics-listen",
                                   absl::StrCat("127.0.0.1:", metrics_port),
                                   "--http-listen",
                                   absl::StrCat("127.0.0.1:", http_port)};
  argv.insert(argv.end(), root_flags.begin(), root_flags.end());
  children->coordinator = SpawnLogged(argv, (state / "logs" / "coordinator.log").string());
  std::fprintf(stderr,
               "local: coordinator on %s (metrics on 127.0.0.1:%d/metrics, dashboard on "
               "http://127.0.0.1:%d/)\n",
               addr.c_str(), metrics_port, http_port);
  return addr;
}

// Starts f.workers workers leasing from the coordinator at `addr`.
void StartWorkers(const std::string& bin, const std::string& addr, const ServiceFlags& f,
                  const std::string& data_dir, const fs::path& state,
                  const std::vector<std::string>& root_flags, Children* children) {
  // Workers share this machine's CPUs: N workers each running every core's worth of OpenMP
  // threads oversubscribe it and spin against each other (common/cpus.h).
  const int threads_per_worker = f.threads_per_worker > 0
                                     ? f.threads_per_worker
                                     : std::max(1, AvailableCpus() / std::max(1, f.workers));
  for (int i = 0; i < f.workers; ++i) {
    std::vector<std::string> argv = {bin,
                                     "--coordinator",
                                     addr,
                                     "--name",
                                     absl::StrCat("local-", i),
                                     "--artifacts",
                                     (state / "artifacts").string(),
                                     "--data-dir",
                                     data_dir,
                                     "--poll-seconds",
                                     "0.5",
                                     // Kept with the rest of the state: a worker of a rerun
                                     // resumes its session (its name is free at once) and
                                     // delivers what a stopped run left in its spool.
                                     "--state-dir",
                                     (state / "workers" / absl::StrCat("local-", i)).string()};
    if (f.devices_per_worker > 0) {
      for (const char* flag : {"--devices", "--max-tp"}) {
        argv.push_back(flag);
        argv.push_back(std::to_string(f.devices_per_worker));
      }
    }
    argv.push_back("--threads");
    argv.push_back(std::to_string(threads_per_worker));
    argv.insert(argv.end(), root_flags.begin(), root_flags.end());
    children->workers.push_back(
        SpawnLogged(argv, (state / "logs" / absl::StrCat("worker-", i, ".log")).string()));
  }
  std::fprintf(stderr, "local: %d workers (logs in %s)\n", f.workers, (state / "logs").c_str());
}

// Submits the sweep, retrying while the coordinator that was just started is not up yet.
StatusOr<v1::SubmitSweepResponse> SubmitWhenUp(Client& client, const std::string& sweep_file) {
  StatusOr<v1::SubmitSweepResponse> sub = absl::UnavailableError("coordinator not up");
  for (int i = 0;
       i < kSubmitAttempts && !sub.ok() && sub.status().code() == absl::StatusCode::kUnavailable;
       ++i) {
    sub = Submit(client, sweep_file);
    if (!sub.ok()) std::this_thread::sleep_for(kSubmitRetryDelay);
  }
  return sub;
}

void PrintSubmitted(const v1::SubmitSweepResponse& sub) {
  std::fprintf(
      stderr, "local: submitted sweep %lld \"%s\": %lld jobs%s\n",
      static_cast<long long>(sub.sweep().id()), sub.sweep().name().c_str(),
      static_cast<long long>(sub.sweep().total()),
      sub.skipped_size() ? absl::StrCat(", ", sub.skipped_size(), " skipped").c_str() : "");
  for (const auto& s : sub.skipped()) {
    std::fprintf(stderr, "  skipped %s: %s\n", s.description().c_str(), s.reason().c_str());
  }
}

// Watches the sweep to its end (or Ctrl-C) and prints its results table; the exit code.
int WatchAndPrintResults(Client& client, int64_t sweep_id, const std::string& format) {
  auto done = Watch(client, sweep_id, true, stderr, &g_interrupted);
  if (!done.ok()) return Fail(done.status());
  int rc = PrintResults(client, sweep_id, format, "");
  if (done->failed() > 0) {
    std::fprintf(stderr, "local: %lld jobs failed (see `bitsweep status` or the worker logs)\n",
                 static_cast<long long>(done->failed()));
    rc = rc ? rc : 1;
  }
  return rc;
}

}  // namespace

StatusOr<std::string> FindBinary(const std::string& name, const std::string& build_subdir) {
  const std::string dir = ExeDir();
  for (const std::string& p : {dir + "/" + name, dir + "/../" + build_subdir + "/" + name}) {
    if (fs::exists(p)) return fs::canonical(p).string();
  }
  return absl::NotFoundError(absl::StrCat(name, " not found next to ", dir));
}

int RunLocal(const ServiceFlags& f, const std::string& data_dir) {
  auto coordinator_bin = FindBinary("bitsweep-coordinator", "server");
  if (!coordinator_bin.ok()) return Fail(coordinator_bin.status());
  auto worker_bin = FindBinary("bitsweep-worker", "worker");
  if (!worker_bin.ok()) return Fail(worker_bin.status());
  if (!fs::exists(f.sweep_file)) {
    return Fail(absl::NotFoundError(f.sweep_file + ": cannot open sweep file"));
  }
  // The coordinator and the workers open only what the sweep names (and the data folder).
  auto sweep = ParseSweepFile(f.sweep_file);
  if (!sweep.ok()) return Fail(sweep.status());
  PathRoots roots = RootsNamedBy(*sweep);
  if (!data_dir.empty()) roots.data.push_back(ResolvePath(data_dir));
  const std::vector<std::string> root_flags = RootFlags(roots);
  const fs::path state = fs::absolute(f.state_dir);
  // Ctrl-C stops the workers, the coordinator and PostgreSQL instead of orphaning them.
  signal(SIGINT, OnInterrupt);
  signal(SIGTERM, OnInterrupt);
  fs::create_directories(state / "logs");
  std::fprintf(stderr, "local: state in %s (PostgreSQL data, artifacts, logs)\n", state.c_str());
  std::string conninfo;
  auto pg = StartPostgres(state, &conninfo);
  if (!pg.ok()) return Fail(pg.status());
  Children children;
  const std::string addr =
      StartCoordinator(*coordinator_bin, conninfo, state, root_flags, &children);
  StartWorkers(*worker_bin, addr, f, data_dir, state, root_flags, &children);

  ServiceFlags cf = f;
  cf.coordinator = addr;
  Client client(cf);
  auto sub = SubmitWhenUp(client, f.sweep_file);
  if (!sub.ok()) {
    children.Stop();
    return Fail(sub.status());
  }
  PrintSubmitted(*sub);
  const int rc = WatchAndPrintResults(client, sub->sweep().id(), f.format);
  children.Stop();
  return rc;
}

}  // namespace bitsweep::cli
