#include "worker/service.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "rpc/channel.h"
#include "worker/clock.h"
#include "worker/coordinator_client.h"
#include "worker/job_process.h"
#include "worker/lease_keeper.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;

bool Stopped(const std::atomic<bool>* stop) { return stop != nullptr && *stop; }

void Log(const std::string& name, const std::string& message) {
  std::fprintf(stderr, "[worker %s] %s\n", name.c_str(), message.c_str());
  std::fflush(stderr);
}

v1::RegisterRequest RegisterRequestOf(const WorkerOptions& o, const std::string& name) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_devices(o.devices);
  request.set_memory_gb(o.memory_gb);
  request.set_max_tp(o.max_tp);
  for (const auto& [key, value] : o.labels) (*request.mutable_labels())[key] = value;
  return request;
}

rpc::ChannelOptions ChannelOptionsOf(const WorkerOptions& o) {
  rpc::ChannelOptions channel;
  channel.target = o.coordinator;
  channel.tls_ca = o.tls_ca;
  channel.tls_cert = o.tls_cert;
  channel.tls_key = o.tls_key;
  return channel;
}

JobProcessOptions JobProcessOptionsOf(const WorkerOptions& o) {
  JobProcessOptions process;
  if (!o.self_exe.empty()) process.self_exe = o.self_exe;
  process.threads = o.threads;
  process.artifact_root = o.artifact_root;
  process.data_dir = o.data_dir;
  return process;
}

// The child's provenance with who ran it: this worker's name and the attempt.
std::string StampProvenance(const std::string& provenance_json, const std::string& worker,
                            int attempt) {
  nlohmann::json provenance = nlohmann::json::parse(provenance_json, nullptr, false);
  if (!provenance.is_object()) return provenance_json;
  provenance["worker"] = worker;
  provenance["attempt"] = attempt;
  return provenance.dump();
}

// One leased job once its process has ended.
struct FinishedJob {
  Status started;  // not OK: no process ran
  bool lost = false;
  bool canceled = false;
  int wait_status = 0;
  std::string result_json;
  Clock::TimePoint start;
};

// The worker's loop over leases; RunWorker's state.
class Worker {
 public:
  // `clock` and `metrics` must outlive the worker.
  Worker(const WorkerOptions& options, std::string name, const std::atomic<bool>* stop,
         Clock& clock, WorkerMetrics* metrics)
      : options_(options),
        name_(std::move(name)),
        stop_(stop),
        clock_(clock),
        metrics_(metrics),
        client_(rpc::OpenChannel(ChannelOptionsOf(options)), options.token, &clock_),
        scratch_(
            (fs::temp_directory_path() / absl::StrCat("bitsweep-worker-", getpid())).string()) {}

  // Registers, then leases and runs jobs until *stop (or the idle limit).
  Status Run() {
    ASSIGN_OR_RETURN(registration_, client_.Register(RegisterRequestOf(options_, name_), stop_));
    Log(absl::StrCat("registered as worker ", registration_.worker_id, " with ",
                     options_.coordinator));
    fs::create_directories(scratch_);
    Clock::TimePoint idle_since = clock_.Now();
    while (!Stopped(stop_)) {
      StatusOr<std::optional<JobLease>> lease = client_.Lease(registration_.worker_id);
      if (lease.status().code() == absl::StatusCode::kNotFound) {
        Log("the coordinator does not know this worker (restarted?): registering again");
        RegisterAgain();
        continue;
      }
      if (lease.ok() && lease->has_value()) {
        const FinishedJob job = RunJob(**lease);
        idle_since = clock_.Now();
        Report(**lease, job);
        continue;
      }
      if (!lease.ok()) Log(lease.status().ToString());
      if (IdleTooLong(idle_since)) break;
      clock_.SleepFor(std::chrono::duration_cast<Clock::Duration>(
          std::chrono::duration<double>(options_.poll_seconds)));
    }
    fs::remove_all(scratch_);
    return absl::OkStatus();
  }

 private:
  void Log(const std::string& message) const { worker::Log(name_, message); }

  // The coordinator keeps registrations in its database, so it knows us after a restart; should
  // it not (its database was reset), Lease answers NOT_FOUND and we register again. The lease
  // TTL of the first registration stays.
  void RegisterAgain() {
    StatusOr<Registration> again = client_.Register(RegisterRequestOf(options_, name_), stop_);
    if (again.ok()) registration_.worker_id = again->worker_id;
  }

  bool IdleTooLong(Clock::TimePoint idle_since) {
    return options_.idle_exit_seconds > 0 &&
           std::chrono::duration<double>(clock_.Now() - idle_since).count() >
               options_.idle_exit_seconds;
  }

  // Runs the job's process to its end while the lease keeper heartbeats.
  FinishedJob RunJob(const JobLease& lease) {
    Log(absl::StrCat("leased job ", lease.job_id, " epoch ", lease.lease_epoch));
    FinishedJob job;
    auto process =
        JobProcess::Start(JobProcessOptionsOf(options_), scratch_, lease.job_id, lease.spec_json);
    job.start = clock_.Now();
    if (!process.ok()) {
      job.started = process.status();
      return job;
    }
    metrics_->SetBusy(true);
    LeaseKeeper keeper(
        registration_.lease_ttl_seconds,
        [&](const ChildProgress& p) { return client_.Heartbeat(lease, p.fraction, p.phase); },
        &clock_, stop_, metrics_);
    while (!(*process)->Exited()) {
      const LeaseKeeper::Action action = keeper.Tick([&] { return (*process)->Progress(); });
      if (action.kill) (*process)->Kill();
      if (action.terminate) {
        Log(absl::StrCat("stopping job ", lease.job_id, ": ", std::string(action.reason)));
        (*process)->Terminate();
      }
      clock_.SleepFor(kJobPollInterval);
    }
    metrics_->SetBusy(false);
    job.lost = keeper.lost();
    job.canceled = keeper.canceled();
    job.wait_status = (*process)->wait_status();
    if (!job.lost) job.result_json = (*process)->ResultJson();
    return job;
  }

  // Completes or fails the job with the coordinator, and counts it.
  void Report(const JobLease& lease, const FinishedJob& job) {
    auto observe = [&](const std::string& outcome) {
      metrics_->ObserveJob(lease.spec_json, outcome,
                           std::chrono::duration<double>(clock_.Now() - job.start).count(),
                           job.result_json);
    };
    if (job.lost) {  // fenced: another attempt owns the job now; discard our work
      observe("lost");
      return;
    }
    const JobExit exit = job.started.ok()
                             ? InterpretJobExit(job.wait_status, job.result_json)
                             : JobExit{false, {}, {}, std::string(job.started.message()), true};
    if (exit.succeeded && !job.canceled) {
      const Status s = client_.Complete(
          lease, exit.metrics, StampProvenance(exit.provenance_json, name_, lease.attempt));
      observe(s.ok()                                              ? "succeeded"
              : s.code() == absl::StatusCode::kFailedPrecondition ? "lost"
                                                                  : "failed");
      Log(absl::StrCat("job ", lease.job_id,
                       s.ok() ? " succeeded" : " complete: ", s.ok() ? "" : s.ToString()));
      return;
    }
    const std::string reason = job.canceled ? std::string("canceled") : exit.failure;
    observe(job.canceled ? "canceled" : "failed");
    const Status s = client_.Fail(lease, reason, !job.canceled && exit.retryable);
    Log(absl::StrCat("job ", lease.job_id, " failed: ", reason,
                     s.ok() ? "" : " (" + s.ToString() + ")"));
  }

  const WorkerOptions& options_;
  const std::string name_;
  const std::atomic<bool>* stop_;
  Clock& clock_;
  WorkerMetrics* metrics_;
  CoordinatorClient client_;
  const std::string scratch_;
  Registration registration_;
};

}  // namespace

Status RunWorker(const WorkerOptions& o, const std::atomic<bool>* stop) {
  const std::string name = o.name.empty() ? absl::StrCat("worker-", getpid()) : o.name;
  WorkerMetrics metrics(kWorkerVersion);
  std::unique_ptr<MetricsServer> metrics_server;
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(metrics_server, MetricsServer::Start(o.metrics_listen, metrics.registry()));
    Log(name, absl::StrCat("metrics on http://", o.metrics_listen, "/metrics (port ",
                           metrics_server->port(), ")"));
  }
  return Worker(o, name, stop, SteadyClock(), &metrics).Run();
}

}  // namespace bitsweep::worker
