// WorkerGateway.Lease by request id over loopback gRPC, against a real coordinator and
// PostgreSQL: a retried Lease answers the same job and epoch, also from a restarted coordinator.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

struct Running {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
};

Running Start(const std::string& db) {
  ServerConfig config;
  config.db = db;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.reaper_interval = absl::Milliseconds(50);
  auto started = Coordinator::Start(config);
  if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
  Running r;
  r.coordinator = std::move(started).value();
  r.worker = v1::WorkerGateway::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(r.coordinator->port()),
                          grpc::InsecureChannelCredentials()));
  return r;
}

v1::LeaseResponse Lease(Running& r, int64_t worker_id, const std::string& request_id) {
  v1::LeaseRequest request;
  request.set_worker_id(worker_id);
  request.set_request_id(request_id);
  v1::LeaseResponse response;
  REQUIRE_RPC_OK(r.worker->Lease(testing::RpcContext().get(), request, &response));
  return response;
}

TEST_CASE("a Lease retried with its request id answers the same job and epoch, also from a "
          "restarted coordinator, and uses no attempt",
          "[pg][grpc]") {
  const std::string db = testing::FreshDatabase();
  Running r = Start(db);
  store::NewJob a, b;
  a.job_key = "a";
  b.job_key = "b";
  a.spec_json = b.spec_json = "{}";
  REQUIRE(r.coordinator->store().SubmitSweep("r", "s", "{}", 0, {a, b}, absl::Now()).ok());
  v1::RegisterRequest reg;
  reg.set_name("w");
  v1::RegisterResponse registered;
  REQUIRE_RPC_OK(r.worker->Register(testing::RpcContext().get(), reg, &registered));
  const int64_t w = registered.worker_id();

  const v1::LeaseResponse first = Lease(r, w, "9f2c-lease-1");
  REQUIRE(first.has_job());
  const v1::LeaseResponse again = Lease(r, w, "9f2c-lease-1");  // the reply was lost: again
  REQUIRE(again.has_job());
  CHECK(again.job_id() == first.job_id());
  CHECK(again.lease_epoch() == first.lease_epoch());
  CHECK(again.attempt() == 1);
  CHECK(again.spec_json() == first.spec_json());

  r.coordinator->Shutdown(absl::ZeroDuration());
  r = Start(db);
  const v1::LeaseResponse after_restart = Lease(r, w, "9f2c-lease-1");
  REQUIRE(after_restart.has_job());
  CHECK(after_restart.job_id() == first.job_id());
  CHECK(after_restart.lease_epoch() == first.lease_epoch());

  const v1::LeaseResponse next = Lease(r, w, "9f2c-lease-2");
  REQUIRE(next.has_job());
  CHECK(next.job_id() != first.job_id());
  auto job = r.coordinator->store().GetJob(first.job_id());
  REQUIRE(job.ok());
  CHECK(job->attempt == 1);
}

}  // namespace
}  // namespace bitsweep::server
