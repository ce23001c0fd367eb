#include "worker/coordinator_client.h"

#include <grpcpp/client_context.h>

#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
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

// One unary call with the worker token and the default deadline; errors name the call, and an
// UNAUTHENTICATED one says where the worker token comes from.
template <typename Method, typename Request, typename Response>
Status Call(v1::WorkerGateway::Stub& stub, const std::string& token, const char* name,
            Method method, const Request& request, Response* response) {
  grpc::ClientContext context;
  rpc::PrepareCall(&context, token);
  Status status = rpc::FromGrpcStatus((stub.*method)(&context, request, response), name);
  if (status.code() != absl::StatusCode::kUnauthenticated) return status;
  return absl::UnauthenticatedError(absl::StrCat(
      status.message(),
      token.empty() ? ": this coordinator requires a worker token and none was given (pass "
                      "--token TOKEN or set $BITSWEEP_WORKER_TOKEN; the coordinator's "
                      "--worker-token names the ones it accepts)"
                    : ": the worker token from --token or $BITSWEEP_WORKER_TOKEN was refused "
                      "(the coordinator accepts the ones of its --worker-token)"));
}

// A request about a leased job, carrying its fence (worker, job, lease epoch).
template <typename Request>
Request Fenced(const JobLease& lease) {
  Request request;
  request.set_worker_id(lease.worker_id);
  request.set_job_id(lease.job_id);
  request.set_lease_epoch(lease.lease_epoch);
  request.set_session(lease.session);
  return request;
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
        return Call(*stub_, token_, "Register", &v1::WorkerGateway::Stub::Register, request,
                    &response);
      }));
  Registration registration;
  registration.worker_id = response.worker_id();
  registration.cluster_id = response.cluster_id();
  if (response.lease_ttl_seconds() > 0) {
    registration.lease_ttl_seconds = response.lease_ttl_seconds();
  }
  return registration;
}

StatusOr<std::optional<JobLease>> CoordinatorClient::Lease(int64_t worker_id,
                                                          const std::string& request_id,
                                                          const std::string& session) {
  v1::LeaseRequest request;
  request.set_worker_id(worker_id);
  request.set_request_id(request_id);
  request.set_session(session);
  v1::LeaseResponse response;
  RETURN_IF_ERROR(
      Call(*stub_, token_, "Lease", &v1::WorkerGateway::Stub::Lease, request, &response));
  if (!response.has_job()) return std::optional<JobLease>();
  JobLease lease;
  lease.worker_id = worker_id;
  lease.job_id = response.job_id();
  lease.lease_epoch = response.lease_epoch();
  lease.attempt = response.attempt();
  lease.spec_json = response.spec_json();
  lease.session = session;
  return std::optional<JobLease>(std::move(lease));
}

StatusOr<bool> CoordinatorClient::Heartbeat(const JobLease& lease, double progress,
                                            const std::string& phase) {
  auto request = Fenced<v1::HeartbeatRequest>(lease);
  request.set_progress(progress);
  request.set_phase(phase);
  v1::HeartbeatResponse response;
  RETURN_IF_ERROR(
      Call(*stub_, token_, "Heartbeat", &v1::WorkerGateway::Stub::Heartbeat, request, &response));
  return response.cancel_requested();
}

Status CoordinatorClient::Complete(const JobLease& lease, const std::vector<MetricRow>& metrics,
                                   const std::string& provenance_json,
                                   const std::string& log_tail) {
  auto request = Fenced<v1::CompleteRequest>(lease);
  for (const MetricRow& m : metrics) {
    v1::Metric* out = request.add_metrics();
    out->set_name(m.name);
    out->set_value(m.value);
    out->set_stderr(m.stderr_);
    out->set_n(m.n);
  }
  request.set_provenance_json(provenance_json);
  request.set_log_tail(log_tail);
  v1::CompleteResponse response;
  return Call(*stub_, token_, "Complete", &v1::WorkerGateway::Stub::Complete, request, &response);
}

Status CoordinatorClient::Fail(const JobLease& lease, const std::string& reason, bool retryable,
                               const std::string& log_tail) {
  auto request = Fenced<v1::FailRequest>(lease);
  request.set_reason(reason);
  request.set_retryable(retryable);
  request.set_log_tail(log_tail);
  v1::FailResponse response;
  return Call(*stub_, token_, "Fail", &v1::WorkerGateway::Stub::Fail, request, &response);
}

std::string NewLeaseRequestId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char out[33];
  std::snprintf(out, sizeof(out), "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return out;
}

}  // namespace bitsweep::worker
