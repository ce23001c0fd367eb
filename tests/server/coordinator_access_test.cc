// The coordinator's edges: bearer tokens, the health service, server reflection and the metrics
// endpoint.
#include "server/coordinator.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/time/clock.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "tests/server/coordinator_testing.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/rpc.h"
#include "tests/testing/socket.h"

namespace bitsweep::server::coordinator_test {
namespace {

// GET http://127.0.0.1:port/metrics with a plain socket; returns the body.
std::string HttpGetMetrics(int port) {
  const int fd = testing::ConnectLoopback(port);
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  ::close(fd);
  const auto body = response.find("\r\n\r\n");
  REQUIRE(body != std::string::npos);
  INFO(response.substr(0, 200));
  REQUIRE(response.rfind("HTTP/1.", 0) == 0);
  REQUIRE(response.find(" 200 ") != std::string::npos);
  return response.substr(body + 4);
}

TEST_CASE("with tokens configured, RPCs without the right bearer token are UNAUTHENTICATED",
          "[pg][grpc]") {
  ServerConfig config;
  config.client_token = "client-secret";
  config.worker_token = "worker-secret";
  Running r = Start(config);
  v1::ListSweepsResponse sweeps;
  CHECK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  CHECK(r.client->ListSweeps(Ctx("wrong").get(), v1::ListSweepsRequest(), &sweeps).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  CHECK(r.client->ListSweeps(Ctx("worker-secret").get(), v1::ListSweepsRequest(), &sweeps)
            .error_code() == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE_RPC_OK(
      r.client->ListSweeps(Ctx("client-secret").get(), v1::ListSweepsRequest(), &sweeps));
  v1::RegisterRequest reg;
  reg.set_name("w");
  v1::RegisterResponse reg_resp;
  CHECK(r.worker->Register(Ctx("client-secret").get(), reg, &reg_resp).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE_RPC_OK(r.worker->Register(Ctx("worker-secret").get(), reg, &reg_resp));
}

TEST_CASE("the viewer token reads sweeps, jobs and results but cannot submit or cancel, and is "
          "no worker token",
          "[pg][grpc]") {
  ServerConfig config;
  config.client_token = "client-secret";
  config.worker_token = "worker-secret";
  config.viewer_token = "viewer-old,viewer-new";
  Running r = Start(config);
  v1::SubmitSweepRequest submit;
  submit.set_request_id("viewer-submit");
  submit.set_sweep_yaml(kSweepYaml);
  submit.set_source_name("test.yaml");
  v1::SubmitSweepResponse submitted;
  const grpc::Status refused = r.client->SubmitSweep(Ctx("viewer-new").get(), submit, &submitted);
  CHECK(refused.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(refused.error_message() ==
        "the viewer token is read-only: this call needs the client token");
  REQUIRE_RPC_OK(r.client->SubmitSweep(Ctx("client-secret").get(), submit, &submitted));

  v1::ListSweepsResponse sweeps;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx("viewer-old").get(), v1::ListSweepsRequest(), &sweeps));
  CHECK(sweeps.sweeps_size() == 1);
  v1::GetSweepRequest get;
  get.set_sweep_id(submitted.sweep().id());
  v1::Sweep sweep;
  REQUIRE_RPC_OK(r.client->GetSweep(Ctx("viewer-new").get(), get, &sweep));
  v1::ListJobsRequest list_jobs;
  list_jobs.set_sweep_id(submitted.sweep().id());
  v1::ListJobsResponse jobs;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx("viewer-new").get(), list_jobs, &jobs));
  REQUIRE(jobs.jobs_size() > 0);
  v1::QueryResultsResponse results;
  REQUIRE_RPC_OK(
      r.client->QueryResults(Ctx("viewer-new").get(), v1::QueryResultsRequest(), &results));

  v1::CancelJobRequest cancel_job;
  cancel_job.set_job_id(jobs.jobs(0).id());
  v1::Job job;
  CHECK(r.client->CancelJob(Ctx("viewer-new").get(), cancel_job, &job).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(submitted.sweep().id());
  CHECK(r.client->CancelSweep(Ctx("viewer-new").get(), cancel, &sweep).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE_RPC_OK(r.client->GetSweep(Ctx("viewer-new").get(), get, &sweep));
  CHECK(sweep.canceled() == 0);

  v1::RegisterRequest reg;
  reg.set_name("w");
  v1::RegisterResponse reg_resp;
  CHECK(r.worker->Register(Ctx("viewer-new").get(), reg, &reg_resp).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("a sweep naming a model outside --model-root is refused before any file is read, in "
          "the same words whether the path exists or not",
          "[pg][grpc]") {
  const std::string dir = testing::ScratchDir("coordinator_model_roots");
  ServerConfig config;
  config.model_roots = {dir + "/models"};
  config.data_roots = {dir + "/data"};
  Running r = Start(config);
  auto submit = [&](const std::string& model) {
    std::string yaml = kSweepYaml;
    const std::string placeholder = "/nonexistent/qwen3-tiny";
    yaml.replace(yaml.find(placeholder), placeholder.size(), model);
    grpc::Status status;
    Submit(r, "roots-" + model, yaml, &status);
    return status;
  };
  // /etc exists (and an /etc/config.json parse error would have been echoed); /etc-nope does not.
  for (const std::string& model :
       std::vector<std::string>{"/etc", "/etc-nope", dir + "/models/../secret"}) {
    INFO(model);
    const grpc::Status refused = submit(model);
    CHECK(refused.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // The sweep parser normalises paths lexically ("models/../secret" -> "secret").
    const std::string named = std::filesystem::path(model).lexically_normal().string();
    CHECK(refused.error_message() ==
          "models[0]: '" + named + "' is outside the --model-root folders this server allows");
  }
  CHECK(submit(dir + "/models/qwen3-tiny").ok());
  v1::ListSweepsResponse sweeps;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps));
  CHECK(sweeps.sweeps_size() == 1);
}

TEST_CASE("a comma-separated token list accepts each of its tokens, so tokens can be rotated",
          "[pg][grpc]") {
  ServerConfig config;
  config.client_token = "client-old,client-new";
  config.worker_token = "worker-old,worker-new";
  Running r = Start(config);
  v1::ListSweepsResponse sweeps;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx("client-old").get(), v1::ListSweepsRequest(), &sweeps));
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx("client-new").get(), v1::ListSweepsRequest(), &sweeps));
  for (const char* wrong : {"client-old,client-new", "client-", "client-newer", "worker-new", ""}) {
    INFO("token '" << wrong << "'");
    CHECK(r.client->ListSweeps(Ctx(wrong).get(), v1::ListSweepsRequest(), &sweeps).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  }
  v1::RegisterRequest reg;
  v1::RegisterResponse reg_resp;
  reg.set_name("w-old");
  REQUIRE_RPC_OK(r.worker->Register(Ctx("worker-old").get(), reg, &reg_resp));
  reg.set_name("w-new");
  REQUIRE_RPC_OK(r.worker->Register(Ctx("worker-new").get(), reg, &reg_resp));
  CHECK(r.worker->Register(Ctx("client-new").get(), reg, &reg_resp).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
}

TEST_CASE("the standard health service answers SERVING", "[pg][grpc]") {
  Running r = Start();
  const testing::Answer health = testing::HealthCheck(r.channel);
  REQUIRE_RPC_OK(health.status);
  CHECK(health.bytes == testing::kServing);
}

TEST_CASE(
    "with tokens configured, the health service still answers without a token (Kubernetes probes)",
    "[pg][grpc]") {
  ServerConfig config;
  config.client_token = "client-secret";
  config.worker_token = "worker-secret";
  Running r = Start(config);
  // No authorization metadata, as the kubelet's gRPC probe sends none.
  const testing::Answer health = testing::HealthCheck(r.channel);
  REQUIRE_RPC_OK(health.status);
  CHECK(health.bytes == testing::kServing);
  // The bitsweep services on the same port still refuse the missing token.
  v1::ListSweepsResponse sweeps;
  CHECK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
}

// Runs the next operation on `cq` to completion; false when it failed.
bool Await(grpc::CompletionQueue& cq, void* expected_tag) {
  void* tag = nullptr;
  bool ok = false;
  if (!cq.Next(&tag, &ok)) return false;
  return ok && tag == expected_tag;
}

TEST_CASE("server reflection lists both bitsweep services", "[pg][grpc]") {
  Running r = Start();
  grpc::GenericStub stub(r.channel);
  grpc::CompletionQueue cq;
  auto ctx = Ctx();
  auto call = stub.PrepareCall(
      ctx.get(), "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* const tag = reinterpret_cast<void*>(1);
  call->StartCall(tag);
  REQUIRE(Await(cq, tag));
  grpc::Slice list_services(
      std::string("\x3a\x00", 2));  // ServerReflectionRequest{list_services: ""}
  grpc::ByteBuffer request(&list_services, 1);
  call->Write(request, tag);
  REQUIRE(Await(cq, tag));
  call->WritesDone(tag);
  REQUIRE(Await(cq, tag));
  grpc::ByteBuffer response;
  call->Read(&response, tag);
  REQUIRE(Await(cq, tag));
  grpc::Status status;
  call->Finish(&status, tag);
  REQUIRE(Await(cq, tag));
  REQUIRE_RPC_OK(status);
  std::vector<grpc::Slice> slices;
  REQUIRE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  CHECK(bytes.find("bitsweep.v1.Coordinator") != std::string::npos);
  CHECK(bytes.find("bitsweep.v1.WorkerGateway") != std::string::npos);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
}

TEST_CASE("the metrics endpoint serves the job gauges and RPC histograms in valid text format",
          "[pg][grpc]") {
  Running r = Start(ServerConfig(), /*with_metrics=*/true);
  REQUIRE(r.coordinator->metrics_port() > 0);
  Submit(r, "req-m", kSweepYaml);
  const int64_t worker = RegisterWorker(r, "host-m/0");
  auto lease = Lease(r, worker);
  REQUIRE(lease.has_job());
  REQUIRE_RPC_OK(Complete(r, worker, lease.job_id(), lease.lease_epoch(), 12.5));

  const std::string text = HttpGetMetrics(r.coordinator->metrics_port());
  INFO(text);
  CHECK(text.find("bitsweep_jobs{state=\"pending\"} 2") != std::string::npos);
  CHECK(text.find("bitsweep_jobs{state=\"succeeded\"} 1") != std::string::npos);
  CHECK(text.find("bitsweep_queue_depth 2") != std::string::npos);
  // Early abort (the sweep has no rule): nothing skipped, nothing saved, both exported.
  CHECK(text.find("bitsweep_jobs{state=\"skipped\"} 0") != std::string::npos);
  CHECK(text.find("bitsweep_early_abort_saved_worker_seconds 0") != std::string::npos);
  CHECK(text.find("bitsweep_rpc_duration_seconds_count{code=\"OK\",method=\"SubmitSweep\"} 1") !=
        std::string::npos);
  CHECK(text.find("bitsweep_lease_duration_seconds_count 1") != std::string::npos);
  CHECK(text.find("bitsweep_job_transitions_total{event=\"LEASE\"} 1") != std::string::npos);
  CHECK(text.find("bitsweep_jobs_completed_total{") != std::string::npos);
  CHECK(text.find("bitsweep_job_duration_seconds_count{") != std::string::npos);

  const std::string promtool = "/usr/bin/promtool";
  if (::access(promtool.c_str(), X_OK) != 0) {
    WARN("promtool not installed: the text format is not linted");
    return;
  }
  const std::string file = testing::ScratchDir("server-metrics") + "/metrics.txt";
  std::ofstream(file) << text;
  FILE* pipe = ::popen((promtool + " check metrics < " + file + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  const int rc = ::pclose(pipe);
  INFO("promtool: " << output);
  CHECK(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
}

}  // namespace
}  // namespace bitsweep::server::coordinator_test
