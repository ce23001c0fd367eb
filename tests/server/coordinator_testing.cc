#include "tests/server/coordinator_testing.h"

#include <catch2/catch.hpp>
#include <utility>

#include "tests/testing/local_pg.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server::coordinator_test {

Running Start(ServerConfig config, bool with_metrics, const std::string& db, bool check_inputs) {
  config.db = db.empty() ? testing::FreshDatabase() : db;
  config.listen = "127.0.0.1:0";
  // Only the metrics test serves /metrics: stopping the exposer (civetweb) takes ~2 s.
  config.metrics_listen = with_metrics ? "127.0.0.1:0" : "";
  config.reaper_interval = absl::Milliseconds(50);
  config.watch_poll_interval = absl::Milliseconds(20);
  // The harness's sweeps name model folders that do not exist (/nonexistent/...): nothing here
  // runs a job. The input check has its own cases, on a coordinator started with it.
  config.check_inputs = check_inputs;
  auto started = Coordinator::Start(config);
  if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
  Running r;
  r.coordinator = std::move(started).value();
  REQUIRE(r.coordinator->port() > 0);
  r.channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(r.coordinator->port()),
                                  grpc::InsecureChannelCredentials());
  r.client = v1::Coordinator::NewStub(r.channel);
  r.worker = v1::WorkerGateway::NewStub(r.channel);
  return r;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  return testing::RpcContext(token);
}

v1::SubmitSweepResponse Submit(Running& r, const std::string& request_id, const std::string& yaml,
                               grpc::Status* status_out) {
  v1::SubmitSweepRequest req;
  req.set_request_id(request_id);
  req.set_sweep_yaml(yaml);
  req.set_source_name("test.yaml");
  v1::SubmitSweepResponse resp;
  grpc::Status st = r.client->SubmitSweep(Ctx().get(), req, &resp);
  if (status_out != nullptr) {
    *status_out = st;
  } else {
    REQUIRE_RPC_OK(st);
  }
  return resp;
}

int64_t RegisterWorker(Running& r, const std::string& name, int devices, int max_tp) {
  v1::RegisterRequest req;
  req.set_name(name);
  req.set_devices(devices);
  req.set_memory_gb(64);
  req.set_max_tp(max_tp);
  v1::RegisterResponse resp;
  REQUIRE_RPC_OK(r.worker->Register(Ctx().get(), req, &resp));
  REQUIRE(resp.worker_id() > 0);
  return resp.worker_id();
}

v1::LeaseResponse Lease(Running& r, int64_t worker_id) {
  v1::LeaseRequest req;
  req.set_worker_id(worker_id);
  v1::LeaseResponse resp;
  REQUIRE_RPC_OK(r.worker->Lease(Ctx().get(), req, &resp));
  return resp;
}

grpc::Status Complete(Running& r, int64_t worker_id, int64_t job_id, int64_t epoch, double ppl) {
  v1::CompleteRequest req;
  req.set_worker_id(worker_id);
  req.set_job_id(job_id);
  req.set_lease_epoch(epoch);
  auto* m = req.add_metrics();
  m->set_name("ppl");
  m->set_value(ppl);
  m->set_n(32);
  req.set_provenance_json(R"({"code_version": "test"})");
  v1::CompleteResponse resp;
  return r.worker->Complete(Ctx().get(), req, &resp);
}

}  // namespace bitsweep::server::coordinator_test
