#include "worker/coordinator_client.h"

#include <grpcpp/client_context.h>

#include "rpc/call_context.h"
#include "rpc/status_convert.h"

namespace bitsweep::worker {
namespace {

// Calls `call` until it answers anything but UNAVAILABLE, `attempts` times at most, waiting
// `delay` between tries; stops early once *stop is set.
template <typename Call>
Status RetryUnavailable(int attempts, Clock::Duration delay, Clock& clock,
                        const std::atomic<bool>* stop, Call call) {
  Status status;
  for (int i = 0; i < attempts; ++i) {
    status = call();
    if (status.code() != absl::StatusCode::kUnavailable || (stop != nullptr && *stop)) break;
    if (i + 1 < attempts) clock.SleepFor(delay);
  }
  return status;
}

}  // namespace

CoordinatorClient::CoordinatorClient(std::shared_ptr<grpc::ChannelInterface> channel,
                                     std::string token, Clock* clock)
    : stub_(v1::WorkerGateway::NewStub(std::move(channel))),
      token_(std::move(token)),
      clock_(clock) {}

StatusOr<Registration> CoordinatorClient::Register(const v1::RegisterRequest& request,
                                                   const std::atomic<bool>* stop) {
  v1::RegisterResponse response;
  RETURN_IF_ERROR(
      RetryUnavailable(kRegisterAttempts, kRegisterRetryDelay, *clock_, stop, [&]() -> Status {
        grpc::ClientContext context;
        rpc::PrepareCall(&context, token_);
        return rpc::FromGrpcStatus(stub_->Register(&context, request, &response), "Register");
      }));
  Registration registration;
  registration.worker_id = response.worker_id();
  if (response.lease_ttl_seconds() > 0) {
    registration.lease_ttl_seconds = response.lease_ttl_seconds();
  }
  return registration;
}

StatusOr<std::optional<JobLease>> CoordinatorClient::Lease(int64_t worker_id) {
  v1::LeaseRequest request;
  request.set_worker_id(worker_id);
  v1::LeaseResponse response;
  grpc::ClientContext context;
  rpc::PrepareCall(&context, token_);
  RETURN_IF_ERROR(rpc::FromGrpcStatus(stub_->Lease(&context, request, &response), "Lease"));
  if (!response.has_job()) return std::optional<JobLease>();
  JobLease lease;
  lease.worker_id = worker_id;
  lease.job_id = response.job_id();
  lease.lease_epoch = response.lease_epoch();
  lease.attempt = response.attempt();
  lease.spec_json = response.spec_json();
  return std::optional<JobLease>(std::move(lease));
}

StatusOr<bool> CoordinatorClient::Heartbeat(const JobLease& lease, double progress,
                                            const std::string& phase) {
  v1::HeartbeatRequest request;
  request.set_worker_id(lease.worker_id);
  request.set_job_id(lease.job_id);
  request.set_lease_epoch(lease.lease_epoch);
  request.set_progress(progress);
  request.set_phase(phase);
  v1::HeartbeatResponse response;
  grpc::ClientContext context;
  rpc::PrepareCall(&context, token_);
  RETURN_IF_ERROR(rpc::FromGrpcStatus(stub_->Heartbeat(&context, request, &response), "Heartbeat"));
  return response.cancel_requested();
}

Status CoordinatorClient::Complete(const JobLease& lease, const std::vector<MetricRow>& metrics,
                                   const std::string& provenance_json) {
  v1::CompleteRequest request;
  request.set_worker_id(lease.worker_id);
  request.set_job_id(lease.job_id);
  request.set_lease_epoch(lease.lease_epoch);
  for (const MetricRow& m : metrics) {
    v1::Metric* out = request.add_metrics();
    out->set_name(m.name);
    out->set_value(m.value);
    out->set_stderr(m.stderr_);
    out->set_n(m.n);
  }
  request.set_provenance_json(provenance_json);
  return RetryUnavailable(kCompleteAttempts, kCompleteRetryDelay, *clock_, nullptr, [&]() {
    v1::CompleteResponse response;
    grpc::ClientContext context;
    rpc::PrepareCall(&context, token_);
    return rpc::FromGrpcStatus(stub_->Complete(&context, request, &response), "Complete");
  });
}

Status CoordinatorClient::Fail(const JobLease& lease, const std::string& reason, bool retryable) {
  v1::FailRequest request;
  request.set_worker_id(lease.worker_id);
  request.set_job_id(lease.job_id);
  request.set_lease_epoch(lease.lease_epoch);
  request.set_reason(reason);
  request.set_retryable(retryable);
  v1::FailResponse response;
  grpc::ClientContext context;
  rpc::PrepareCall(&context, token_);
  return rpc::FromGrpcStatus(stub_->Fail(&context, request, &response), "Fail");
}

}  // namespace bitsweep::worker
