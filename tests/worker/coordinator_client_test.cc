// The worker's coordinator client against a scripted WorkerGateway on loopback (no coordinator,
// no database) and a manual clock, so that its retries take no time.
#include "worker/coordinator_client.h"

#include <catch2/catch.hpp>
#include <deque>
#include <mutex>

#include "rpc/channel.h"
#include "tests/testing/loopback_server.h"

namespace bitsweep::worker {
namespace {

// Answers each call with the next scripted status of its method (OK once none is left) and
// remembers what it was sent.
class ScriptedGateway final : public v1::WorkerGateway::Service {
 public:
  std::deque<grpc::Status> register_answers, lease_answers, heartbeat_answers, complete_answers,
      fail_answers;
  int register_calls = 0, complete_calls = 0, fail_calls = 0;
  bool has_job = false, cancel_requested = false;
  std::vector<std::string> lease_request_ids;
  double lease_ttl_seconds = 30;
  std::string authorization;
  v1::HeartbeatRequest heartbeat;
  v1::CompleteRequest complete;
  v1::FailRequest fail;

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++register_calls;
    auto it = context->client_metadata().find("authorization");
    if (it != context->client_metadata().end()) {
      authorization.assign(it->second.data(), it->second.size());
    }
    response->set_worker_id(request->name() == "w" ? 7 : 8);
    response->set_lease_ttl_seconds(lease_ttl_seconds);
    return Next(register_answers);
  }
  grpc::Status Lease(grpc::ServerContext*, const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    lease_request_ids.push_back(request->request_id());
    if (has_job) {
      response->set_has_job(true);
      response->set_job_id(request->worker_id() * 100);
      response->set_lease_epoch(3);
      response->set_attempt(2);
      response->set_spec_json("{\"model\": \"m\"}");
    }
    return Next(lease_answers);
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    heartbeat = *request;
    response->set_cancel_requested(cancel_requested);
    return Next(heartbeat_answers);
  }
  grpc::Status Complete(grpc::ServerContext*, const v1::CompleteRequest* request,
                        v1::CompleteResponse*) override {
    return Record(*request, &complete, &complete_calls, complete_answers);
  }
  grpc::Status Fail(grpc::ServerContext*, const v1::FailRequest* request,
                    v1::FailResponse*) override {
    return Record(*request, &fail, &fail_calls, fail_answers);
  }

 private:
  static grpc::Status Next(std::deque<grpc::Status>& answers) {
    if (answers.empty()) return grpc::Status::OK;
    grpc::Status next = answers.front();
    answers.pop_front();
    return next;
  }
  template <typename Request>
  grpc::Status Record(const Request& request, Request* last, int* calls,
                      std::deque<grpc::Status>& answers) {
    std::lock_guard<std::mutex> lock(mu_);
    ++*calls;
    *last = request;
    return Next(answers);
  }
  std::mutex mu_;
};

const grpc::Status kUnavailable(grpc::StatusCode::UNAVAILABLE, "the coordinator is starting");

struct Fixture {
  ScriptedGateway gateway;
  testing::LoopbackServer server{&gateway};
  ManualClock clock;
  CoordinatorClient client{rpc::OpenChannel({server.address(), "", "", ""}), "tok", &clock};
};

v1::RegisterRequest Named(const std::string& name) {
  v1::RegisterRequest request;
  request.set_name(name);
  return request;
}

TEST_CASE("Register retries UNAVAILABLE on the clock and answers the worker id and lease TTL",
          "[grpc]") {
  Fixture f;
  REQUIRE(f.server.port() > 0);
  f.gateway.register_answers = {kUnavailable, kUnavailable, kUnavailable};
  const Clock::TimePoint start = f.clock.Now();
  auto registration = f.client.Register(Named("w"), nullptr);
  REQUIRE(registration.ok());
  CHECK(registration->worker_id == 7);
  CHECK(registration->lease_ttl_seconds == 30);
  CHECK(f.gateway.register_calls == 4);
  CHECK(f.clock.Now() - start == 3 * kRegisterRetryDelay);
  CHECK(f.gateway.authorization == "Bearer tok");

  f.gateway.lease_ttl_seconds = 0;  // none named: the default
  CHECK(f.client.Register(Named("w"), nullptr)->lease_ttl_seconds == kDefaultLeaseTtlSeconds);
}

TEST_CASE("Register gives up after its attempts, at once when stopping, and on other errors",
          "[grpc]") {
  Fixture f;
  f.gateway.register_answers.assign(kRegisterAttempts + 5, kUnavailable);
  const Status exhausted = f.client.Register(Named("w"), nullptr).status();
  CHECK(exhausted.code() == absl::StatusCode::kUnavailable);
  CHECK(exhausted.message() == "Register: the coordinator is starting");
  CHECK(f.gateway.register_calls == kRegisterAttempts);

  std::atomic<bool> stop{true};
  f.gateway.register_calls = 0;
  CHECK(f.client.Register(Named("w"), &stop).status().code() == absl::StatusCode::kUnavailable);
  CHECK(f.gateway.register_calls == 1);

  f.gateway.register_calls = 0;
  f.gateway.register_answers = {grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "bad token")};
  CHECK(f.client.Register(Named("w"), nullptr).status().code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(f.gateway.register_calls == 1);
}

TEST_CASE("Lease answers the job with its fence, none, or NOT_FOUND for an unknown worker",
          "[grpc]") {
  Fixture f;
  auto none = f.client.Lease(7);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());

  f.gateway.has_job = true;
  auto leased = f.client.Lease(7);
  REQUIRE(leased.ok());
  REQUIRE(leased->has_value());
  const JobLease& lease = **leased;
  CHECK(lease.worker_id == 7);
  CHECK(lease.job_id == 700);
  CHECK(lease.lease_epoch == 3);
  CHECK(lease.attempt == 2);
  CHECK(lease.spec_json == "{\"model\": \"m\"}");

  CHECK(f.client.Lease(7, "req-1").ok());
  CHECK(f.gateway.lease_request_ids.back() == "req-1");
  const std::string a = NewLeaseRequestId(), b = NewLeaseRequestId();
  CHECK(a.size() == 32);
  CHECK(a != b);

  f.gateway.lease_answers = {grpc::Status(grpc::StatusCode::NOT_FOUND, "worker_id: 7")};
  const Status unknown = f.client.Lease(7).status();
  CHECK(unknown.code() == absl::StatusCode::kNotFound);
  CHECK(unknown.message() == "Lease: worker_id: 7");
}

JobLease Lease() {
  JobLease lease;
  lease.worker_id = 7;
  lease.job_id = 700;
  lease.lease_epoch = 3;
  lease.attempt = 2;
  return lease;
}

TEST_CASE("Heartbeat sends the fence and progress and answers cancel_requested", "[grpc]") {
  Fixture f;
  f.gateway.cancel_requested = true;
  auto cancel = f.client.Heartbeat(Lease(), 0.5, "quantize layer 3/4");
  REQUIRE(cancel.ok());
  CHECK(*cancel);
  CHECK(f.gateway.heartbeat.worker_id() == 7);
  CHECK(f.gateway.heartbeat.job_id() == 700);
  CHECK(f.gateway.heartbeat.lease_epoch() == 3);
  CHECK(f.gateway.heartbeat.progress() == 0.5);
  CHECK(f.gateway.heartbeat.phase() == "quantize layer 3/4");

  f.gateway.heartbeat_answers = {grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "stale")};
  CHECK(f.client.Heartbeat(Lease(), 0.6, "").status().code() ==
        absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("Complete and Fail send the lease's fence once and report every error", "[grpc]") {
  Fixture f;
  f.gateway.complete_answers = {kUnavailable};
  CHECK(f.client.Complete(Lease(), {}, "{}").code() == absl::StatusCode::kUnavailable);
  CHECK(f.gateway.complete_calls == 1);  // retried by worker/result_delivery.h, not here
  REQUIRE(f.client.Complete(Lease(), {{"acc", 0.75, 0.01, 100}}, "{\"worker\":\"w\"}").ok());
  CHECK(f.gateway.complete_calls == 2);
  CHECK(f.gateway.complete.lease_epoch() == 3);
  REQUIRE(f.gateway.complete.metrics_size() == 1);
  CHECK(f.gateway.complete.metrics(0).name() == "acc");
  CHECK(f.gateway.complete.metrics(0).value() == 0.75);
  CHECK(f.gateway.complete.metrics(0).stderr() == 0.01);
  CHECK(f.gateway.complete.metrics(0).n() == 100);
  CHECK(f.gateway.complete.provenance_json() == "{\"worker\":\"w\"}");

  f.gateway.fail_answers = {kUnavailable};
  CHECK(f.client.Fail(Lease(), "disk full", true).code() == absl::StatusCode::kUnavailable);
  CHECK(f.gateway.fail_calls == 1);
  CHECK(f.gateway.fail.reason() == "disk full");
  CHECK(f.gateway.fail.retryable());
  CHECK(f.gateway.fail.job_id() == 700);
}

}  // namespace
}  // namespace bitsweep::worker
