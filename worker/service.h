// The worker process: registers with the coordinator, leases jobs that fit it, runs each one in
// a child process (`bitsweep-worker run-job`, so that a crash or an out-of-memory kill costs only
// that attempt), heartbeats with the child's progress while it runs, and completes or fails the
// job. A heartbeat answered with cancel_requested, or FAILED_PRECONDITION (the lease was taken
// away), kills the child promptly; its work is discarded. The parts: the coordinator's RPCs
// (worker/coordinator_client.h), the job process and its protocol (worker/job_process.h), the
// heartbeats (worker/lease_keeper.h), the finished results not yet delivered
// (worker/result_spool.h, worker/result_delivery.h); the loop in worker/service.cc ties them
// together. A succeeded job's result is spooled on disk before its first Complete and kept
// until the coordinator takes it (or fences the lease), through coordinator and database
// outages and restarts of the worker: a worker starts by delivering what its spool holds.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "common/path_roots.h"
#include "common/status.h"
#include "worker/device_offer.h"

namespace bitsweep::worker {

struct WorkerOptions {
  std::string coordinator = "127.0.0.1:50051";
  // Unique among the coordinator's live workers (a Register under a name another live worker
  // holds is refused, naming it). "" = the state directory's: <host name>-<random suffix>, made
  // on the first start and kept (worker/worker_state.h).
  std::string name;
  std::string token;                      // worker bearer token ("" = none)
  std::string tls_ca, tls_cert, tls_key;  // TLS to the coordinator when tls_ca is set
  std::string artifact_root;              // shared directory of quantized models
  std::string data_dir;
  // What it registers (devices, memory per device, largest TP size, its GPUs) and gives each
  // job process (its GPUs through CUDA_VISIBLE_DEVICES): worker/device_offer.h. Default: the
  // CPU, one device, memory unspecified.
  DeviceOffer offer;
  std::map<std::string, std::string> labels;  // stored with the registration (zone, gpu, ...)
  double poll_seconds = 1.0;                  // wait between empty leases
  double idle_exit_seconds = 0;               // > 0: exit after this long without a job
  std::string self_exe;        // this binary (for run-job children); default /proc/self/exe
  int threads = 0;             // CPU threads of each job process (0 = all cores)
  // host:port of the Prometheus /metrics endpoint ("" = off). No token (it exports counts, never
  // ids or paths). HTTPS with metrics_tls_cert and _key (the pod's own server certificate, not
  // the client one above); _ca also requires client certificates. A non-loopback host needs
  // HTTPS or insecure_allow_remote: the coordinator's rule (server/server_config.h).
  std::string metrics_listen;
  std::string metrics_tls_cert, metrics_tls_key, metrics_tls_ca;
  bool insecure_allow_remote = false;
  // Where a job's model, task and calibration paths may lead (common/path_roots.h); a job
  // naming anything else fails as bad input before any of its files is opened.
  PathRoots roots;
  // Survives restarts (worker/worker_state.h): the spool of finished results not yet delivered
  // (locked: one worker per state directory), the default name and the session. "" = under
  // $XDG_STATE_HOME (else ~/.local/state)/bitsweep/worker/, per name and coordinator
  // (OpenWorkerState). A spooled result is re-sent only to a
  // coordinator of the database that leased it (RegisterResponse.cluster_id).
  std::string state_dir;
};

class WorkerMetrics;

// Runs until *stop becomes true (or the idle limit passes). Errors only for a metrics_listen
// that cannot be bound, is remote without TLS or insecure_allow_remote, or has unusable TLS
// files (INVALID_ARGUMENT naming the flag, before any job) or a failed registration; job failures are reported to the coordinator
// and the loop goes on.
Status RunWorker(const WorkerOptions& options, const std::atomic<bool>* stop);
// The same, counting into `metrics` (which must outlive the call): for tests.
Status RunWorker(const WorkerOptions& options, const std::atomic<bool>* stop,
                 WorkerMetrics* metrics);

}  // namespace bitsweep::worker
