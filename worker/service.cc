#include "worker/service.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "common/job_spec.h"
#include "rpc/channel.h"
#include "worker/clock.h"
#include "worker/coordinator_client.h"
#include "worker/job_process.h"
#include "worker/lease_keeper.h"
#include "worker/metrics.h"
#include "worker/result_delivery.h"
#include "worker/result_spool.h"
#include "worker/worker_state.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;

bool Stopped(const std::atomic<bool>* stop) { return stop != nullptr && *stop; }

void Log(const std::string& name, const std::string& message) {
  std::fprintf(stderr, "[worker %s] %s\n", name.c_str(), message.c_str());
  std::fflush(stderr);
}

v1::RegisterRequest RegisterRequestOf(const WorkerOptions& o, const std::string& name,
                                      const std::string& session) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_session(session);
  request.set_devices(o.offer.devices);
  request.set_memory_gb(o.offer.memory_gb);
  request.set_max_tp(o.offer.max_tp);
  for (size_t i = 0; i < o.offer.gpus.size(); ++i) {
    const model::CudaDeviceInfo& info = o.offer.gpus[i];
    v1::GpuDevice* gpu = request.add_gpus();
    gpu->set_index(info.index);
    gpu->set_id(o.offer.gpu_ids[i]);
    gpu->set_name(info.name);
    gpu->set_total_bytes(info.total_bytes);
    gpu->set_free_bytes(info.free_bytes);
  }
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

// The job process of one leased job: the devices it leased (spec resources.devices) among this
// worker's, and the memory cap the worker was given.
JobProcessOptions JobProcessOptionsOf(const WorkerOptions& o, const std::string& spec_json) {
  JobProcessOptions process;
  if (!o.self_exe.empty()) process.self_exe = o.self_exe;
  process.threads = o.threads;
  process.artifact_root = o.artifact_root;
  process.data_dir = o.data_dir;
  StatusOr<JobSpec> spec = JobSpecFromJson(spec_json);  // a bad spec fails in the child
  const JobDevices devices = DevicesForJob(o.offer, spec.ok() ? spec->resources.devices : 1);
  process.device = devices.device;
  process.cuda_visible_devices = devices.cuda_visible_devices;
  process.max_memory_bytes =
      static_cast<int64_t>(o.offer.memory_cap_gb * 1024.0 * 1024.0 * 1024.0);
  process.roots = o.roots;
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
  std::string log_tail;  // the end of the job process's output (JobProcess::LogTail)
  Clock::TimePoint start;
};

// The worker's loop over leases; RunWorker's state.
class Worker {
 public:
  // `clock` and `metrics` must outlive the worker.
  Worker(const WorkerOptions& options, WorkerState state, const std::atomic<bool>* stop,
         Clock& clock, WorkerMetrics* metrics)
      : options_(options),
        name_(state.name),
        session_(state.session),
        spool_(std::move(state.spool)),
        stop_(stop),
        clock_(clock),
        metrics_(metrics),
        client_(rpc::OpenChannel(ChannelOptionsOf(options)), options.token, &clock_) {}

  // Registers, delivers what the spool holds, then leases and runs jobs until *stop (or the idle
  // limit).
  Status Run() {
    ASSIGN_OR_RETURN(registration_,
                     client_.Register(RegisterRequestOf(options_, name_, session_), stop_));
    Log(absl::StrCat("registered as worker ", registration_.worker_id, " with ",
                     options_.coordinator, "; offers ", options_.offer.description));
    DeliverSpooled();
    ASSIGN_OR_RETURN(scratch_, MakeScratchDir());
    Clock::TimePoint idle_since = clock_.Now();
    std::string request_id;  // kept while a Lease goes unanswered, so that its retry is a replay
    while (!Stopped(stop_)) {
      if (request_id.empty()) request_id = NewLeaseRequestId();
      StatusOr<std::optional<JobLease>> lease =
          client_.Lease(registration_.worker_id, request_id, session_);
      if (lease.ok() || lease.status().code() == absl::StatusCode::kNotFound) request_id.clear();
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
    StatusOr<Registration> again =
        client_.Register(RegisterRequestOf(options_, name_, session_), stop_);
    if (again.ok()) registration_.worker_id = again->worker_id;
  }

  // The results a previous run of this worker (or this run, before a shutdown) could not deliver.
  void DeliverSpooled() {
    std::vector<std::string> unreadable;
    const std::vector<SpooledResult> spooled = spool_->List(&unreadable);
    for (const std::string& path : unreadable) {
      Log(absl::StrCat("unreadable spooled result ", path, " set aside as ", path, ".corrupt"));
    }
    if (!spooled.empty()) {
      Log(absl::StrCat(spooled.size(), " result(s) in ", spool_->dir(), ": delivering"));
    }
    for (const SpooledResult& result : spooled) {
      if (Stopped(stop_)) return;
      // Job ids and epochs mean nothing in another database: such a result could only land on
      // the wrong job.
      if (!result.cluster_id.empty() && !registration_.cluster_id.empty() &&
          result.cluster_id != registration_.cluster_id) {
        Log(absl::StrCat("job ", result.lease.job_id, ": discarding its spooled result: it was "
                         "leased from another coordinator database (", result.cluster_id, ")"));
        metrics_->CountDiscardedResult("other_database");
        if (Status removed = spool_->Remove(result); !removed.ok()) Log(removed.ToString());
        continue;
      }
      const Delivery d = DeliverResult(DeliveryContextOf(), result);
      if (d == Delivery::kDelivered) Log(absl::StrCat("job ", result.lease.job_id, " succeeded"));
    }
  }

  DeliveryContext DeliveryContextOf() {
    DeliveryContext c;
    c.client = &client_;
    c.spool = spool_.get();
    c.clock = &clock_;
    c.stop = stop_;
    c.metrics = metrics_;
    c.lease_ttl_seconds = registration_.lease_ttl_seconds;
    c.log = [this](const std::string& message) { Log(message); };
    return c;
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
        JobProcess::Start(JobProcessOptionsOf(options_, lease.spec_json), scratch_, lease.job_id, lease.spec_json);
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
    job.log_tail = (*process)->LogTail();
    if (!job.log_tail.empty()) {  // the worker's own log keeps the job's output too
      Log(absl::StrCat("job ", lease.job_id, " output:\n", job.log_tail));
    }
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
      // On disk before the first Complete: from here on no outage and no restart loses it.
      const std::string provenance = StampProvenance(exit.provenance_json, name_, lease.attempt);
      StatusOr<SpooledResult> spooled =
          spool_->Put(lease, exit.metrics, provenance, registration_.cluster_id, job.log_tail);
      if (!spooled.ok()) {
        Log(absl::StrCat("job ", lease.job_id, ": ", spooled.status().ToString(),
                         "; delivering the result from memory only"));
        spooled = SpooledResult{lease, exit.metrics, provenance, registration_.cluster_id, "",
                                job.log_tail};
      }
      switch (DeliverResult(DeliveryContextOf(), *spooled)) {
        case Delivery::kDelivered:
          observe("succeeded");
          Log(absl::StrCat("job ", lease.job_id, " succeeded"));
          break;
        case Delivery::kFenced:
          observe("lost");
          break;
        case Delivery::kRefused:
          observe("failed");
          break;
        case Delivery::kStopped:  // delivered by the next start
          break;
      }
      return;
    }
    const std::string reason = job.canceled ? std::string("canceled") : exit.failure;
    observe(job.canceled ? "canceled" : "failed");
    const Status s = client_.Fail(lease, reason, !job.canceled && exit.retryable, job.log_tail);
    Log(absl::StrCat("job ", lease.job_id, job.canceled ? " canceled" : " failed: " + reason,
                     s.ok() ? "" : " (" + s.ToString() + ")"));
  }

  const WorkerOptions& options_;
  const std::string name_;
  const std::string session_;
  std::unique_ptr<ResultSpool> spool_;  // locks the state directory for this process
  const std::atomic<bool>* stop_;
  Clock& clock_;
  WorkerMetrics* metrics_;
  CoordinatorClient client_;
  std::string scratch_;  // made by Run (MakeScratchDir)
  Registration registration_;
};

}  // namespace

Status RunWorker(const WorkerOptions& o, const std::atomic<bool>* stop) {
  WorkerMetrics metrics(kWorkerVersion);
  return RunWorker(o, stop, &metrics);
}

Status RunWorker(const WorkerOptions& o, const std::atomic<bool>* stop, WorkerMetrics* metrics) {
  if (!o.metrics_listen.empty() && !IsLoopbackAddress(o.metrics_listen) &&
      o.metrics_tls_cert.empty() && !o.insecure_allow_remote) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics_listen: '", o.metrics_listen,
        "' is not a loopback address; remote /metrics needs TLS (--metrics-tls-cert, "
        "--metrics-tls-key, optionally --metrics-tls-ca for client certificates) or "
        "--insecure-allow-remote on a trusted network"));
  }
  ASSIGN_OR_RETURN(WorkerState state, OpenWorkerState(o.state_dir, o.name, o.coordinator));
  const std::string name = state.name;
  std::unique_ptr<MetricsServer> metrics_server;
  if (!o.metrics_listen.empty()) {
    ASSIGN_OR_RETURN(metrics_server,
                     MetricsServer::Start(o.metrics_listen, metrics->registry(),
                                          std::chrono::seconds(5),
                                          {o.metrics_tls_cert, o.metrics_tls_key, o.metrics_tls_ca}));
    Log(name, absl::StrCat("metrics on ", metrics_server->https() ? "https://" : "http://",
                           o.metrics_listen, "/metrics (port ", metrics_server->port(),
                           o.metrics_tls_ca.empty() ? "" : ", client certificates required",
                           ")"));
  }
  Log(name, absl::StrCat("state in ", state.dir));
  return Worker(o, std::move(state), stop, SteadyClock(), metrics).Run();
}

}  // namespace bitsweep::worker
