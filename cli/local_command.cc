#include "cli/local_command.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/client_commands.h"
#include "cli/output.h"
#include "common/cpus.h"
#include "common/path_roots.h"
#include "common/process.h"
#include "common/sweep.h"
#include "common/sweep_inputs.h"
#include "model/device.h"
#include "store/local_postgres.h"

namespace bitsweep::cli {
namespace {

namespace fs = std::filesystem;

// Set by SIGINT, SIGTERM, SIGHUP and SIGPIPE (standard output closed, as by `| head`) during
// `bitsweep local`: stop waiting and tear everything down.
std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signal{0};
void OnSignal(int sig) {
  g_signal = sig;
  g_interrupted = true;
}

void InstallSignalHandlers() {
  struct sigaction a {};
  a.sa_handler = OnSignal;
  sigemptyset(&a.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaction(sig, &a, nullptr);
}

// How often, and how far apart, the coordinator that was just started is asked until it answers.
constexpr int kConnectAttempts = 100;
constexpr std::chrono::milliseconds kConnectRetryDelay{300};
// A stopped worker or coordinator (and what it started) gets this long after SIGTERM before
// SIGKILL: Ctrl-C stops everything within a few seconds.
constexpr std::chrono::milliseconds kStopGrace{5000};
// How often `--keep` checks for a signal and for a service that died.
constexpr std::chrono::milliseconds kServePoll{200};
// The ports of the last run, reused while they are free: a stable address for `--keep`.
constexpr const char* kPortsFile = "ports";

std::string ExeDir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

// The loopback ports the coordinator listens on: those `state`/ports names when they are still
// free, else new ones, written back.
struct Ports {
  int grpc = 0, http = 0, metrics = 0;
};

Ports ChoosePorts(const fs::path& state) {
  Ports p;
  std::ifstream(state / kPortsFile) >> p.grpc >> p.http >> p.metrics;
  for (int* port : {&p.grpc, &p.http, &p.metrics}) {
    if (!PortIsFree(*port)) *port = FreePort();
  }
  std::ofstream(state / kPortsFile) << p.grpc << " " << p.http << " " << p.metrics << "\n";
  return p;
}

// What `bitsweep local` started; the destructor stops it all (workers, then the coordinator,
// then PostgreSQL) and says what it stopped, on every way out of RunLocal.
class LocalServices {
 public:
  // `root_flags` (--model-root/--data-root ...) go to the coordinator and every worker.
  LocalServices(fs::path state, std::vector<std::string> root_flags)
      : state_(std::move(state)), root_flags_(std::move(root_flags)) {}
  ~LocalServices() { Stop(); }

  // A private PostgreSQL in `state`/postgres that stops with this process however it ends, and
  // the database "bitsweep" (created unless read_only).
  Status StartPostgres(bool read_only) {
    store::LocalPostgresOptions po;
    po.data_dir = (state_ / "postgres").string();
    po.read_only = read_only;
    po.stop_with_owner = true;
    ASSIGN_OR_RETURN(pg_, store::LocalPostgres::Start(po));
    conninfo_ = pg_->ConnInfo("bitsweep");
    if (!read_only) {
      auto created = pg_->CreateDatabase("bitsweep");  // fails harmlessly when it exists
      if (created.ok()) conninfo_ = *created;
    }
    std::fprintf(stderr, "local: PostgreSQL (pid %d) on 127.0.0.1:%d%s\n",
                 static_cast<int>(pg_->pid()), pg_->port(), read_only ? ", read-only" : "");
    return absl::OkStatus();
  }

  // The coordinator on the state's loopback ports, in a process group of its own that dies
  // with this process.
  void StartCoordinator(const std::string& bin) {
    const Ports ports = ChoosePorts(state_);
    address_ = absl::StrCat("127.0.0.1:", ports.grpc);
    dashboard_ = absl::StrCat("http://127.0.0.1:", ports.http, "/");
    std::vector<std::string> argv = {bin,
                                     "--listen",
                                     address_,
                                     "--db",
                                     conninfo_,
                                     "--metrics-listen",
                                     absl::StrCat("127.0.0.1:", ports.metrics),
                                     "--http-listen",
                                     absl::StrCat("127.0.0.1:", ports.http)};
    argv.insert(argv.end(), root_flags_.begin(), root_flags_.end());
    coordinator_ =
        SpawnLogged(argv, (state_ / "logs" / "coordinator.log").string(), ChildOptions());
    std::fprintf(stderr,
                 "local: coordinator (pid %d) on %s (metrics on 127.0.0.1:%d/metrics, dashboard "
                 "on %s)\n",
                 static_cast<int>(coordinator_), address_.c_str(), ports.metrics,
                 dashboard_.c_str());
  }

  // f.workers workers leasing from the coordinator, each in a process group of its own (with
  // its job processes) that dies with this process.
  void StartWorkers(const std::string& bin, const ServiceFlags& f, const std::string& data_dir) {
    // Workers share this machine's CPUs: N workers each running every core's worth of OpenMP
    // threads oversubscribe it and spin against each other (common/cpus.h).
    const int threads_per_worker = f.threads_per_worker > 0
                                       ? f.threads_per_worker
                                       : std::max(1, AvailableCpus() / std::max(1, f.workers));
    for (int i = 0; i < f.workers; ++i) {
      std::vector<std::string> argv = {bin,
                                       "--coordinator",
                                       address_,
                                       "--name",
                                       absl::StrCat("local-", i),
                                       "--artifacts",
                                       (state_ / "artifacts").string(),
                                       "--data-dir",
                                       data_dir,
                                       "--poll-seconds",
                                       "0.5",
                                       // Kept with the rest of the state: a worker of a rerun
                                       // resumes its session (its name is free at once) and
                                       // delivers what a stopped run left in its spool.
                                       "--state-dir",
                                       (state_ / "workers" / absl::StrCat("local-", i)).string()};
      if (f.devices_per_worker > 0) {
        for (const char* flag : {"--devices", "--max-tp"}) {
          argv.push_back(flag);
          argv.push_back(std::to_string(f.devices_per_worker));
        }
      }
      argv.push_back("--threads");
      argv.push_back(std::to_string(threads_per_worker));
      argv.insert(argv.end(), root_flags_.begin(), root_flags_.end());
      workers_.push_back(SpawnLogged(
          argv, (state_ / "logs" / absl::StrCat("worker-", i, ".log")).string(), ChildOptions()));
    }
    std::vector<std::string> pids;
    for (pid_t w : workers_) pids.push_back(std::to_string(w));
    std::fprintf(stderr, "local: %d worker%s (pid%s %s; logs in %s)\n", f.workers,
                 f.workers == 1 ? "" : "s", f.workers == 1 ? "" : "s",
                 absl::StrJoin(pids, ", ").c_str(), (state_ / "logs").c_str());
  }

  // "" while the coordinator and every worker run; else which one exited.
  std::string Died() {
    if (coordinator_ > 0 && waitpid(coordinator_, nullptr, WNOHANG) == coordinator_) {
      coordinator_ = -1;
      return "the coordinator";
    }
    for (pid_t& w : workers_) {
      if (w > 0 && waitpid(w, nullptr, WNOHANG) == w) {
        const std::string what = absl::StrCat("worker pid ", w);
        w = -1;
        return what;
      }
    }
    return "";
  }

  // Workers first (all told at once), so none reports to a coordinator that is already gone;
  // then the coordinator, then PostgreSQL. Idempotent.
  void Stop() {
    std::vector<std::string> stopped;
    std::vector<std::string> worker_pids;
    for (pid_t w : workers_) {
      if (w > 0) kill(-w, SIGTERM);
    }
    for (pid_t w : workers_) {
      if (w <= 0) continue;
      const bool in_time = StopProcessGroup(w, kStopGrace);
      worker_pids.push_back(absl::StrCat(w, in_time ? "" : " killed"));
    }
    workers_.clear();
    if (!worker_pids.empty()) {
      stopped.push_back(absl::StrCat(worker_pids.size(), " worker",
                                     worker_pids.size() == 1 ? "" : "s", " (pid",
                                     worker_pids.size() == 1 ? " " : "s ",
                                     absl::StrJoin(worker_pids, ", "), ")"));
    }
    if (coordinator_ > 0) {
      const bool in_time = StopProcessGroup(coordinator_, kStopGrace);
      stopped.push_back(
          absl::StrCat("the coordinator (pid ", coordinator_, in_time ? "" : " killed", ")"));
      coordinator_ = -1;
    }
    if (pg_ != nullptr) {
      const pid_t pid = pg_->pid();
      const Status st = pg_->Stop();
      stopped.push_back(st.ok() ? absl::StrCat("PostgreSQL (pid ", pid, ")")
                                : absl::StrCat("PostgreSQL (pid ", pid, "): ", st.message()));
      pg_.reset();  // the guardian too
    }
    if (!stopped.empty()) {
      std::fprintf(stderr, "local: stopped %s\n", absl::StrJoin(stopped, ", ").c_str());
    }
  }

  const std::string& address() const { return address_; }
  const std::string& dashboard() const { return dashboard_; }

 private:
  static SpawnOptions ChildOptions() {
    SpawnOptions o;
    o.own_process_group = true;
    // Only when this process died without stopping them (SIGKILL, a crash): no grace then.
    o.parent_death_signal = SIGKILL;
    return o;
  }

  fs::path state_;
  std::vector<std::string> root_flags_;
  std::unique_ptr<store::LocalPostgres> pg_;
  std::string conninfo_, address_, dashboard_;
  pid_t coordinator_ = -1;
  std::vector<pid_t> workers_;
};

// Retries `call` while the coordinator that was just started is not up yet (UNAVAILABLE), or
// until a signal.
template <typename Call>
auto WhenUp(Call call) -> decltype(call()) {
  decltype(call()) r = absl::UnavailableError("coordinator not up");
  for (int i = 0; i < kConnectAttempts && !g_interrupted; ++i) {
    r = call();
    if (r.ok() || r.status().code() != absl::StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(kConnectRetryDelay);
  }
  return r;
}

void PrintSubmitted(const v1::SubmitSweepResponse& sub) {
  std::fprintf(stderr, "local: submitted %s\n", SubmitLine(sub).c_str());
  for (const auto& s : sub.skipped()) {
    std::fprintf(stderr, "  skipped %s: %s\n", s.description().c_str(), s.reason().c_str());
  }
}

// The exit code of a run stopped by a signal: 128 + its number, as a shell reports it.
int SignalExit() {
  const int sig = g_signal;
  std::fprintf(stderr, "local: %s: stopping everything\n",
               sig == SIGPIPE ? "standard output closed" : strsignal(sig));
  return 128 + sig;
}

// Watches the sweep to its end (or a signal) and prints its results table and each failed
// job's error; the exit code.
int WatchAndPrintResults(Client& client, int64_t sweep_id, const std::string& format,
                         bool percent) {
  auto done = Watch(client, sweep_id, true, stderr, &g_interrupted);
  if (g_interrupted) return SignalExit();
  if (!done.ok()) return Fail(done.status());
  int rc = PrintResults(client, sweep_id, format, "", percent);
  // Now, not at exit: a closed standard output (`| head`) shows as SIGPIPE here.
  std::cout.flush();
  std::fflush(stdout);
  if (rc == kExitNoResults) rc = kExitOk;  // the failed jobs below say why
  const int64_t unfinished = done->failed() + done->canceled();
  if (unfinished > 0) {
    v1::ListJobsRequest request;
    request.set_sweep_id(sweep_id);
    v1::ListJobsResponse jobs;
    if (client.Call(&v1::Coordinator::Stub::ListJobs, request, &jobs).ok()) {
      for (const v1::Job& j : jobs.jobs()) {
        if (j.state() == v1::JOB_STATE_FAILED || j.state() == v1::JOB_STATE_CANCELED) {
          std::fprintf(stderr, "local: job %lld %s: %s\n", static_cast<long long>(j.id()),
                       j.state() == v1::JOB_STATE_FAILED ? "failed" : "canceled",
                       j.error().c_str());
        }
      }
    }
    std::fprintf(stderr,
                 "local: %lld of %lld jobs did not succeed (logs in the state folder's logs/; "
                 "rerun with --keep to inspect them with `bitsweep status`)\n",
                 static_cast<long long>(unfinished), static_cast<long long>(done->total()));
    rc = rc ? rc : kExitJobsFailed;
  }
  if (g_interrupted) return SignalExit();
  return rc;
}

// --keep: serves until a signal (kExitOk) or until a service dies (kExitError).
int Serve(LocalServices& services) {
  std::fprintf(stderr,
               "local: serving until Ctrl-C: coordinator %s (e.g. `bitsweep status "
               "--coordinator %s`), dashboard %s\n",
               services.address().c_str(), services.address().c_str(),
               services.dashboard().c_str());
  while (!g_interrupted) {
    const std::string died = services.Died();
    if (!died.empty()) {
      std::fprintf(stderr, "local: %s exited; stopping everything\n", died.c_str());
      return kExitError;
    }
    std::this_thread::sleep_for(kServePoll);
  }
  SignalExit();
  return kExitOk;
}

// --status: every sweep with its jobs, as `bitsweep status` and `bitsweep status ID` print them.
int PrintStatus(Client& client) {
  v1::ListSweepsResponse sweeps;
  const Status st = WhenUp([&]() -> StatusOr<bool> {
    RETURN_IF_ERROR(
        client.Call(&v1::Coordinator::Stub::ListSweeps, v1::ListSweepsRequest(), &sweeps));
    return true;
  }).status();
  if (!st.ok()) return Fail(st);
  const std::vector<std::string> lines = SweepLines(sweeps);
  for (int i = 0; i < sweeps.sweeps_size(); ++i) {
    const v1::Sweep& s = sweeps.sweeps(i);
    std::printf("%s\n", lines[i].c_str());
    v1::ListJobsRequest request;
    request.set_sweep_id(s.id());
    v1::ListJobsResponse jobs;
    if (Status js = client.Call(&v1::Coordinator::Stub::ListJobs, request, &jobs); !js.ok()) {
      return Fail(js);
    }
    for (const std::string& line : JobLines(jobs)) std::printf("  %s\n", line.c_str());
  }
  return kExitOk;
}

// The jobs whose resources no local worker offers (they would wait for ever), one line per
// distinct need. Local workers offer --devices-per-worker devices and tensor-parallel ranks (1
// by default) and leave their memory unspecified, which takes no job that names memory_gb.
std::vector<std::string> UnservableJobs(const ExpandedSweep& expanded, const ServiceFlags& f) {
  // Workers on GPUs offer what they discover (the GPU count, per-GPU memory); not checked here.
  if (model::VisibleCudaDevices() > 0) return {};
  const int devices = f.devices_per_worker > 0 ? f.devices_per_worker : 1;
  std::map<std::string, int> needs;  // description -> jobs
  for (const JobSpec& j : expanded.jobs) {
    const Resources& r = j.resources;
    std::vector<std::string> over;
    if (r.devices > devices) over.push_back(absl::StrCat("devices ", r.devices));
    if (r.tp > devices) over.push_back(absl::StrCat("tp ", r.tp));
    if (r.memory_gb > 0) over.push_back(absl::StrCat("memory_gb ", r.memory_gb));
    if (!over.empty()) ++needs[absl::StrJoin(over, ", ")];
  }
  std::vector<std::string> lines;
  for (const auto& [need, count] : needs) {
    lines.push_back(absl::StrCat(count, count == 1 ? " job needs" : " jobs need", " resources ",
                                 need, ", which no local worker offers (each offers ", devices,
                                 " device", devices == 1 ? "" : "s", " and tp ", devices,
                                 ", memory unspecified): drop or lower the sweep's resources, or "
                                 "pass --devices-per-worker"));
  }
  return lines;
}

// Parses and expands the sweep and checks what its jobs read and need, before anything starts:
// OK, or INVALID_ARGUMENT listing every problem.
Status ValidateSweep(const std::string& sweep_file, const std::string& data_dir,
                     const ServiceFlags& f) {
  ASSIGN_OR_RETURN(SweepSpec spec, ParseSweepFile(sweep_file));
  ASSIGN_OR_RETURN(ExpandedSweep expanded, ExpandSweep(spec));
  InputCheckOptions check;
  check.data_dir = data_dir;
  std::vector<std::string> problems = CheckSweepInputs(expanded, check);
  for (std::string& line : UnservableJobs(expanded, f)) problems.push_back(std::move(line));
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      sweep_file, ": ", problems.size(), " problem", problems.size() == 1 ? "" : "s",
      " (nothing was started):\n  ", absl::StrJoin(problems, "\n  ")));
}

}  // namespace

StatusOr<std::string> FindBinary(const std::string& name, const std::string& build_subdir) {
  const std::string dir = ExeDir();
  for (const std::string& p : {dir + "/" + name, dir + "/../" + build_subdir + "/" + name}) {
    if (fs::exists(p)) return fs::canonical(p).string();
  }
  return absl::NotFoundError(absl::StrCat(name, " not found next to ", dir));
}

std::string DefaultLocalStateDir() {
  const char* xdg = std::getenv("XDG_STATE_HOME");
  if (xdg != nullptr && *xdg == '/') return (fs::path(xdg) / "bitsweep" / "local").string();
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') {
    return (fs::path(home) / ".local" / "state" / "bitsweep" / "local").string();
  }
  return "bitsweep-local";
}

int RunLocal(const ServiceFlags& f, const std::string& data_dir_flag) {
  const bool inspect = f.local_results || f.local_status;
  if (inspect && (!f.sweep_file.empty() || f.keep)) {
    return Fail(absl::InvalidArgumentError(
        "--results and --status read a stopped state folder: they take no sweep file and no "
        "--keep"));
  }
  if (f.sweep_file.empty() && !inspect && !f.keep) {
    return Fail(absl::InvalidArgumentError(
        "local: name a sweep file, or pass --keep (serve the state folder), --results or "
        "--status"));
  }
  const std::string data_dir =
      data_dir_flag.empty() ? "" : fs::absolute(data_dir_flag).lexically_normal().string();
  if (!f.sweep_file.empty()) {
    if (Status st = ValidateSweep(f.sweep_file, data_dir, f); !st.ok()) return Fail(st);
  }
  auto coordinator_bin = FindBinary("bitsweep-coordinator", "server");
  if (!coordinator_bin.ok()) return Fail(coordinator_bin.status());
  auto worker_bin = FindBinary("bitsweep-worker", "worker");
  if (!worker_bin.ok()) return Fail(worker_bin.status());
  const fs::path state =
      fs::absolute(f.state_dir.empty() ? DefaultLocalStateDir() : f.state_dir).lexically_normal();
  if (inspect && !fs::exists(state / "postgres" / "PG_VERSION")) {
    return Fail(absl::NotFoundError(absl::StrCat("no bitsweep local state in ", state.string(),
                                                 " (run `bitsweep local SWEEP` first, or pass "
                                                 "--state-dir)")));
  }
  // Ctrl-C, SIGTERM, SIGHUP and a closed standard output stop the workers, the coordinator and
  // PostgreSQL instead of orphaning them; SIGKILL stops them too (PR_SET_PDEATHSIG, and
  // PostgreSQL's guardian).
  InstallSignalHandlers();
  std::error_code ec;
  fs::create_directories(state / "logs", ec);
  if (ec) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot create the state folder ", state.string(), ": ", ec.message())));
  }
  std::fprintf(stderr, "local: state in %s (PostgreSQL data, artifacts, logs)\n", state.c_str());
  // A run of one sweep confines the coordinator and the workers to what that sweep names (and
  // the data folder); a --keep service, which takes further sweeps, is not confined.
  std::vector<std::string> root_flags;
  if (!f.sweep_file.empty() && !f.keep) {
    auto spec = ParseSweepFile(f.sweep_file);
    if (!spec.ok()) return Fail(spec.status());
    PathRoots roots = RootsNamedBy(*spec);
    if (!data_dir.empty()) roots.data.push_back(ResolvePath(data_dir));
    root_flags = RootFlags(roots);
  }
  LocalServices services(state, std::move(root_flags));
  if (Status st = services.StartPostgres(/*read_only=*/inspect); !st.ok()) return Fail(st);
  services.StartCoordinator(*coordinator_bin);
  ServiceFlags cf = f;
  cf.coordinator = services.address();
  Client client(cf);
  if (inspect) {
    if (f.local_status) return PrintStatus(client);
    // Waits for the coordinator with a cheap call, then asks for the results.
    auto up = WhenUp([&]() -> StatusOr<bool> {
      v1::ListSweepsResponse r;
      RETURN_IF_ERROR(
          client.Call(&v1::Coordinator::Stub::ListSweeps, v1::ListSweepsRequest(), &r));
      return true;
    });
    if (!up.ok()) return Fail(up.status());
    return PrintResults(client, 0, f.format, "", f.percent);
  }
  services.StartWorkers(*worker_bin, f, data_dir);
  int rc = kExitOk;
  if (!f.sweep_file.empty()) {
    auto sub = WhenUp([&] { return Submit(client, f.sweep_file); });
    if (g_interrupted) return SignalExit();
    if (!sub.ok()) return Fail(sub.status());
    PrintSubmitted(*sub);
    rc = WatchAndPrintResults(client, sub->sweep().id(), f.format, f.percent);
    if (g_interrupted) return rc;
  }
  if (f.keep) {
    const int served = Serve(services);
    return rc != kExitOk ? rc : served;
  }
  return rc;
}

}  // namespace bitsweep::cli
