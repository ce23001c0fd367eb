// CoordinatorClient: the worker's side of proto/bitsweep/v1/worker.proto. Every call carries the
// worker token and a 30 s deadline (rpc/call_context.h), and its error names the call
// ("Lease: ..."). Register retries UNAVAILABLE, waiting on the injected clock: the coordinator
// may be starting or restarting, and a name registers the same worker. The other calls are sent
// once and report every error to their caller, which tries again on its own schedule: the
// worker's loop (Lease, with the same request id), the lease keeper (Heartbeat) and
// worker/result_delivery.h (Complete, idempotent for the same epoch). Thread-safe (gRPC stubs
// are).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bitsweep/v1/worker.grpc.pb.h"
#include "common/status.h"
#include "worker/clock.h"
#include "worker/job_runner.h"

namespace bitsweep::worker {

// Register: how often, and how far apart, while the coordinator answers UNAVAILABLE (a minute).
inline constexpr int kRegisterAttempts = 120;
inline constexpr std::chrono::milliseconds kRegisterRetryDelay{500};
// The coordinator's lease TTL when its Register answer names none.
inline constexpr double kDefaultLeaseTtlSeconds = 60;

struct Registration {
  int64_t worker_id = 0;
  double lease_ttl_seconds = kDefaultLeaseTtlSeconds;  // > 0
  std::string cluster_id;  // the coordinator database's identity ("" from an older coordinator)
};

// One job leased by this worker: what every later call about it carries (the lease epoch, the
// fence that makes a call from a worker whose lease was taken away fail), and what the job
// process runs.
struct JobLease {
  int64_t worker_id = 0;
  int64_t job_id = 0;
  int64_t lease_epoch = 0;
  int32_t attempt = 0;    // 1 for the first
  std::string spec_json;  // the JobSpec (JobSpecToJson)
  std::string session;    // the worker's session (RegisterRequest.session), sent with every call
};

class CoordinatorClient {
 public:
  // `clock` (for the retries' waits) must outlive the client. `token` "" sends none.
  CoordinatorClient(std::shared_ptr<grpc::ChannelInterface> channel, std::string token,
                    Clock* clock);

  // Retries UNAVAILABLE kRegisterAttempts times, kRegisterRetryDelay apart, or until *stop.
  StatusOr<Registration> Register(const v1::RegisterRequest& request,
                                  const std::atomic<bool>* stop);
  // The next job that fits this worker, nullopt when there is none now. NOT_FOUND: the
  // coordinator does not know `worker_id` (its database was reset): register again.
  // `request_id` makes the call idempotent (LeaseRequest.request_id): send the same one again
  // after an error, a new one (NewLeaseRequestId) after an answer. The lease carries `session`.
  StatusOr<std::optional<JobLease>> Lease(int64_t worker_id, const std::string& request_id = "",
                                          const std::string& session = "");
  // Renews the lease and reports progress; the answer is whether a client asked to cancel the
  // job. FAILED_PRECONDITION: the lease is lost (another attempt owns the job).
  StatusOr<bool> Heartbeat(const JobLease& lease, double progress, const std::string& phase);
  // One attempt; FAILED_PRECONDITION: the lease was fenced.
  // `log_tail`: the end of the job process's output (CompleteRequest.log_tail; "" = none).
  Status Complete(const JobLease& lease, const std::vector<MetricRow>& metrics,
                  const std::string& provenance_json, const std::string& log_tail = "");
  Status Fail(const JobLease& lease, const std::string& reason, bool retryable,
              const std::string& log_tail = "");

 private:
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  std::string token_;
  Clock* clock_;
};

// A fresh random request id for Lease (128 bits, hex).
std::string NewLeaseRequestId();

}  // namespace bitsweep::worker
