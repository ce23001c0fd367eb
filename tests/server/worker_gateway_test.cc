// WorkerGateway.Lease by request id over loopback gRPC, against a real coordinator and
// PostgreSQL: a retried Lease answers the same job and epoch, also from a restarted coordinator.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

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
  config.check_inputs = false;  // the sweeps here name models that do not exist
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


TEST_CASE("a GPU worker registers its GPUs, is refused when its offer disagrees with them, and "
          "is leased only jobs whose memory per device its smallest GPU holds",
          "[pg][grpc]") {
  Running r = Start(testing::FreshDatabase());
  store::NewJob fits, too_big;
  fits.job_key = "fits";
  too_big.job_key = "too-big";
  fits.spec_json = too_big.spec_json = "{}";
  fits.needs.devices = too_big.needs.devices = 2;
  fits.needs.memory_gb = 70;
  too_big.needs.memory_gb = 90;  // per device: more than an 80 GB GPU has
  too_big.priority = 1;          // would be leased first if it fitted
  REQUIRE(r.coordinator->store().SubmitSweep("r", "s", "{}", 0, {fits, too_big}, absl::Now()).ok());

  v1::RegisterRequest reg;
  reg.set_name("gpu-worker");
  reg.set_devices(2);
  reg.set_max_tp(2);
  reg.set_memory_gb(79.1);
  for (int i = 0; i < 2; ++i) {
    v1::GpuDevice* g = reg.add_gpus();
    g->set_index(i);
    g->set_id(std::to_string(i + 4));
    g->set_name("NVIDIA H100 80GB HBM3");
    g->set_total_bytes(int64_t{85} * 1000 * 1000 * 1000);  // 79.2 GiB
    g->set_free_bytes(int64_t{84} * 1000 * 1000 * 1000);
  }
  v1::RegisterResponse registered;

  v1::RegisterRequest wrong_count = reg;
  wrong_count.set_devices(1);
  grpc::Status refused =
      r.worker->Register(testing::RpcContext().get(), wrong_count, &registered);
  CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(refused.error_message().find("devices: 1 but 2 GPUs") != std::string::npos);
  v1::RegisterRequest too_much = reg;
  too_much.set_memory_gb(80);
  refused = r.worker->Register(testing::RpcContext().get(), too_much, &registered);
  CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(refused.error_message().find("memory_gb: 80 GiB per device") != std::string::npos);

  REQUIRE_RPC_OK(r.worker->Register(testing::RpcContext().get(), reg, &registered));
  auto stored = r.coordinator->store().GetWorker(registered.worker_id());
  REQUIRE(stored.ok());
  const nlohmann::json gpus = nlohmann::json::parse(stored->gpus_json);
  REQUIRE(gpus.size() == 2);
  CHECK(gpus[1]["id"] == "5");
  CHECK(gpus[1]["name"] == "NVIDIA H100 80GB HBM3");
  CHECK(gpus[1]["total_bytes"] == int64_t{85} * 1000 * 1000 * 1000);

  const v1::LeaseResponse leased = Lease(r, registered.worker_id(), "gpu-lease-1");
  REQUIRE(leased.has_job());
  auto job = r.coordinator->store().GetJob(leased.job_id());
  REQUIRE(job.ok());
  CHECK(job->job_key == "fits");
  CHECK_FALSE(Lease(r, registered.worker_id(), "gpu-lease-2").has_job());
}

}  // namespace
}  // namespace bitsweep::server
