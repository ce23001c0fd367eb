// CoordinatorClient: the worker's side of proto/bitsweep/v1/worker.proto. Every call carries the
// worker token and a 30 s deadline (rpc/call_context.h), and its error names the call
// ("Lease: ..."). Register and Complete retry UNAVAILABLE, waiting on the injected clock: the
// coordinator may be starting or restarting, and both calls are idempotent (a name registers the
// same worker; Complete is idempotent for the same epoch). The other calls report every error to
// the worker's loop, which tries again on its own schedule. Thread-safe (gRPC stubs are).
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
// Complete: how often, and how far apart, while the coordinator answers UNAVAILABLE.
inline constexpr int kCompleteAttempts = 10;
inline constexpr std::chrono::seconds kCompleteRetryDelay{1};
// The coordinator's lease TTL when its Register answer names none.
inline constexpr double kDefaultLeaseTtlSeconds = 60;

struct Registration {
  int64_t worker_id = 0;
  double lease_ttl_seconds = kDefaultLeaseTtlSeconds;  // > 0
};

// One job leased by this worker: what every later call about it carries (the fence, STYLE.md
// P10), and what the job process runs.
struct JobLease {
  int64_t worker_id = 0;
  int64_t job_id = 0;
  int64_t lease_epoch = 0;
  int32_t attempt = 0;    // 1 for the first
  std::string spec_json;  // the JobSpec (JobSpecToJson)
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
  StatusOr<std::optional<JobLease>> Lease(int64_t worker_id);
  // Renews the lease and reports progress; the answer is whether a client asked to cancel the
  // job. FAILED_PRECONDITION: the lease is lost (another attempt owns the job).
  StatusOr<bool> Heartbeat(const JobLease& lease, double progress, const std::string& phase);
  // Retries UNAVAILABLE kCompleteAttempts times, kCompleteRetryDelay apart.
  Status Complete(const JobLease& lease, const std::vector<MetricRow>& metrics,
                  const std::string& provenance_json);
  Status Fail(const JobLease& lease, const std::string& reason, bool retryable);

 private:
  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  std::string token_;
  Clock* clock_;
};

}  // namespace bitsweep::worker
