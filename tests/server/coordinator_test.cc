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
#include <fstream>
#include <map>
#include <set>

#include "absl/time/clock.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

// rtn w4 and the fp baseline from the first entry (billm w4 makes no sense: skipped), billm w1
// from the second: 3 jobs, 1 skipped combination. The model path need not exist.
constexpr const char* kSweepYaml = R"(name: small
priority: 5
max_attempts: 2
models: [/nonexistent/qwen3-tiny]
methods:
  - method: [rtn, billm]
    wbits: [4]
  - method: billm
tasks: [wikitext2]
)";

// Shares the baseline and rtn w4 with kSweepYaml; adds rtn w3.
constexpr const char* kOverlappingYaml = R"(name: overlap
models: [/nonexistent/qwen3-tiny]
methods:
  - method: rtn
    wbits: [3, 4]
tasks: [wikitext2]
)";

struct Running {
  std::unique_ptr<Coordinator> coordinator;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Coordinator::Stub> client;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
};

// `db` "": a fresh database; otherwise that one (a restarted coordinator).
Running Start(ServerConfig config = {}, bool with_metrics = false, const std::string& db = "") {
  config.db = db.empty() ? testing::FreshDatabase() : db;
  config.listen = "127.0.0.1:0";
  // Only the metrics test serves /metrics: stopping the exposer (civetweb) takes ~2 s.
  config.metrics_listen = with_metrics ? "127.0.0.1:0" : "";
  config.reaper_interval = absl::Milliseconds(50);
  config.watch_poll_interval = absl::Milliseconds(20);
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

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "") {
  return testing::RpcContext(token);
}

v1::SubmitSweepResponse Submit(Running& r, const std::string& request_id, const std::string& yaml,
                               grpc::Status* status_out = nullptr) {
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

int64_t TotalJobsInStore(Running& r) {
  auto counts = r.coordinator->store().CountJobsByState();
  REQUIRE(counts.ok());
  int64_t total = 0;
  for (const auto& [state, n] : *counts) total += n;
  return total;
}

int64_t RegisterWorker(Running& r, const std::string& name, int devices = 1, int max_tp = 1) {
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

grpc::Status Heartbeat(Running& r, int64_t worker_id, int64_t job_id, int64_t epoch,
                       double progress, const std::string& phase, v1::HeartbeatResponse* resp) {
  v1::HeartbeatRequest req;
  req.set_worker_id(worker_id);
  req.set_job_id(job_id);
  req.set_lease_epoch(epoch);
  req.set_progress(progress);
  req.set_phase(phase);
  return r.worker->Heartbeat(Ctx().get(), req, resp);
}

v1::Job FindJob(Running& r, int64_t job_id) {
  v1::ListJobsRequest req;
  v1::ListJobsResponse resp;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), req, &resp));
  for (const auto& job : resp.jobs()) {
    if (job.id() == job_id) return job;
  }
  FAIL("job " << job_id << " not listed");
  return {};
}

// GET http://127.0.0.1:port/metrics with a plain socket; returns the body.
std::string HttpGetMetrics(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
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

TEST_CASE("a submitted sweep becomes its expanded jobs and lists the skipped combinations",
          "[pg][grpc]") {
  Running r = Start();
  auto resp = Submit(r, "req-1", kSweepYaml);
  CHECK_FALSE(resp.replayed());
  CHECK(resp.sweep().id() > 0);
  CHECK(resp.sweep().name() == "small");
  CHECK(resp.sweep().priority() == 5);
  CHECK(resp.sweep().total() == 3);
  CHECK(resp.sweep().pending() == 3);
  CHECK_FALSE(resp.sweep().finished());
  REQUIRE(resp.skipped_size() == 1);
  CHECK(resp.skipped(0).description().find("billm") != std::string::npos);
  CHECK_FALSE(resp.skipped(0).reason().empty());

  v1::ListJobsRequest list;
  list.set_sweep_id(resp.sweep().id());
  v1::ListJobsResponse jobs;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), list, &jobs));
  REQUIRE(jobs.jobs_size() == 3);
  std::set<std::string> keys;
  for (const auto& job : jobs.jobs()) {
    keys.insert(job.job_key());
    CHECK(job.state() == v1::JOB_STATE_PENDING);
    CHECK(job.max_attempts() == 2);
    CHECK(job.priority() == 5);
    CHECK(job.spec_json().find("\"priority\":0") != std::string::npos);
    CHECK(job.spec_json().find("/nonexistent/qwen3-tiny") != std::string::npos);
  }
  CHECK(keys.size() == 3);

  SECTION("resubmitting the same request id replays the sweep and creates nothing") {
    auto again = Submit(r, "req-1", kSweepYaml);
    CHECK(again.replayed());
    CHECK(again.sweep().id() == resp.sweep().id());
    CHECK(TotalJobsInStore(r) == 3);
    // Even a different text: the request id decides.
    auto other = Submit(r, "req-1", kOverlappingYaml);
    CHECK(other.replayed());
    CHECK(other.sweep().id() == resp.sweep().id());
    CHECK(TotalJobsInStore(r) == 3);
  }
  SECTION("a second sweep sharing jobs links them instead of duplicating them") {
    auto second = Submit(r, "req-2", kOverlappingYaml);
    CHECK_FALSE(second.replayed());
    CHECK(second.sweep().id() != resp.sweep().id());
    CHECK(second.sweep().total() == 3);  // fp, rtn w3, rtn w4
    CHECK(TotalJobsInStore(r) == 4);     // only rtn w3 is new
    v1::ListJobsRequest all;
    v1::ListJobsResponse every;
    REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), all, &every));
    CHECK(every.jobs_size() == 4);
    v1::ListSweepsResponse sweeps;
    REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps));
    REQUIRE(sweeps.sweeps_size() == 2);
    CHECK(sweeps.sweeps(0).id() == second.sweep().id());  // newest first
  }
}

TEST_CASE("an invalid sweep is INVALID_ARGUMENT naming the field and stores nothing",
          "[pg][grpc]") {
  Running r = Start();
  const std::string bad = R"(name: bad
models: [/m]
methods:
  - method: rtn
    wbits: [four]
tasks: [wikitext2]
)";
  grpc::Status st;
  Submit(r, "req-bad", bad, &st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  INFO(st.error_message());
  CHECK(st.error_message().find("wbits") != std::string::npos);
  CHECK(st.error_message().find("test.yaml") != std::string::npos);
  CHECK(TotalJobsInStore(r) == 0);
  v1::ListSweepsResponse sweeps;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps));
  CHECK(sweeps.sweeps_size() == 0);

  Submit(r, "", kSweepYaml, &st);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message().find("request_id") != std::string::npos);
}

TEST_CASE("a worker leases, heartbeats and completes every job and each result is stored once",
          "[pg][grpc]") {
  Running r = Start();
  auto sweep = Submit(r, "req-w", kSweepYaml).sweep();
  const int64_t worker = RegisterWorker(r, "host-a/0");

  // Watch from the start: the stream must follow the sweep to its end.
  grpc::ClientContext watch_ctx;
  watch_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetSweepRequest watch_req;
  watch_req.set_sweep_id(sweep.id());
  auto watch = r.client->WatchSweep(&watch_ctx, watch_req);
  v1::Sweep seen;
  REQUIRE(watch->Read(&seen));
  CHECK(seen.pending() == 3);

  std::map<int64_t, int64_t> epochs;  // job id -> epoch
  for (int i = 0; i < 3; ++i) {
    auto lease = Lease(r, worker);
    REQUIRE(lease.has_job());
    CHECK(lease.lease_epoch() >= 1);
    CHECK(lease.attempt() == 1);
    CHECK_FALSE(lease.spec_json().empty());
    CHECK(lease.lease_ttl_seconds() == Approx(60));
    epochs[lease.job_id()] = lease.lease_epoch();
  }
  CHECK_FALSE(Lease(r, worker).has_job());
  REQUIRE(epochs.size() == 3);

  const int64_t first = epochs.begin()->first;
  v1::HeartbeatResponse hb;
  REQUIRE_RPC_OK(Heartbeat(r, worker, first, epochs[first], 0.25, "eval wikitext2", &hb));
  CHECK_FALSE(hb.cancel_requested());
  const v1::Job running = FindJob(r, first);
  CHECK(running.state() == v1::JOB_STATE_LEASED);
  CHECK(running.progress() == Approx(0.25));
  CHECK(running.phase() == "eval wikitext2");
  CHECK(running.worker() == "host-a/0");

  SECTION("a call with a stale epoch is FAILED_PRECONDITION and changes nothing") {
    grpc::Status st = Complete(r, worker, first, epochs[first] + 1, 1.0);
    CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    st = Heartbeat(r, worker, first, epochs[first] - 1, 0.5, "x", &hb);
    CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(FindJob(r, first).state() == v1::JOB_STATE_LEASED);
    v1::QueryResultsResponse none;
    REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), v1::QueryResultsRequest(), &none));
    CHECK(none.rows_size() == 0);
  }

  double ppl = 10;
  for (const auto& [job_id, epoch] : epochs) {
    REQUIRE_RPC_OK(Complete(r, worker, job_id, epoch, ppl));
    ppl += 1;
  }
  // A replayed Complete (the worker retried after UNAVAILABLE) is OK and writes nothing.
  REQUIRE_RPC_OK(Complete(r, worker, first, epochs[first], 10));

  v1::QueryResultsRequest q;
  q.set_sweep_id(sweep.id());
  v1::QueryResultsResponse results;
  REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), q, &results));
  REQUIRE(results.rows_size() == 3);
  std::set<int64_t> result_jobs;
  for (const auto& row : results.rows()) {
    result_jobs.insert(row.job_id());
    CHECK(row.metric().name() == "ppl");
    CHECK(row.metric().n() == 32);
    CHECK(row.spec_json().find("/nonexistent/qwen3-tiny") != std::string::npos);
    CHECK(row.provenance_json().find("\"code_version\":\"test\"") != std::string::npos);
    CHECK(row.provenance_json().find("host-a/0") != std::string::npos);
    CHECK_FALSE(row.job_key().empty());
  }
  CHECK(result_jobs.size() == 3);

  // The watch saw the end: its last message is the finished sweep, then the stream closes OK.
  v1::Sweep last = seen;
  while (watch->Read(&seen)) last = seen;
  REQUIRE_RPC_OK(watch->Finish());
  CHECK(last.finished());
  CHECK(last.succeeded() == 3);

  v1::GetSweepRequest get;
  get.set_sweep_id(sweep.id());
  v1::Sweep done;
  REQUIRE_RPC_OK(r.client->GetSweep(Ctx().get(), get, &done));
  CHECK(done.succeeded() == 3);
  CHECK(done.finished());
}

TEST_CASE("a lease without heartbeats expires and the job is offered again", "[pg][grpc]") {
  ServerConfig config;
  config.lease_ttl = absl::Milliseconds(200);
  Running r = Start(config);
  Submit(r, "req-e", kOverlappingYaml);
  const int64_t worker = RegisterWorker(r, "host-b/0");
  auto lease = Lease(r, worker);
  REQUIRE(lease.has_job());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  v1::Job job;
  do {
    absl::SleepFor(absl::Milliseconds(50));
    job = FindJob(r, lease.job_id());
  } while (job.state() == v1::JOB_STATE_LEASED && absl::Now() < deadline);
  CHECK(job.state() == v1::JOB_STATE_PENDING);
  v1::HeartbeatResponse hb;
  CHECK(Heartbeat(r, worker, lease.job_id(), lease.lease_epoch(), 0.5, "late", &hb).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("canceling a sweep cancels pending jobs and asks leased ones to stop", "[pg][grpc]") {
  Running r = Start();
  auto sweep = Submit(r, "req-c", kOverlappingYaml).sweep();
  const int64_t worker = RegisterWorker(r, "host-c/0");
  auto lease = Lease(r, worker);
  REQUIRE(lease.has_job());
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(sweep.id());
  v1::Sweep after;
  REQUIRE_RPC_OK(r.client->CancelSweep(Ctx().get(), cancel, &after));
  CHECK(after.canceled() == 2);
  CHECK(after.leased() == 1);
  v1::HeartbeatResponse hb;
  REQUIRE_RPC_OK(Heartbeat(r, worker, lease.job_id(), lease.lease_epoch(), 0.1, "q", &hb));
  CHECK(hb.cancel_requested());
  v1::FailRequest fail;
  fail.set_worker_id(worker);
  fail.set_job_id(lease.job_id());
  fail.set_lease_epoch(lease.lease_epoch());
  fail.set_reason("canceled");
  v1::FailResponse fail_resp;
  REQUIRE_RPC_OK(r.worker->Fail(Ctx().get(), fail, &fail_resp));
  CHECK(FindJob(r, lease.job_id()).state() == v1::JOB_STATE_CANCELED);

  v1::CancelJobRequest cancel_job;
  cancel_job.set_job_id(987654);
  v1::Job job;
  CHECK(r.client->CancelJob(Ctx().get(), cancel_job, &job).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("a retryable failure returns the job to pending and a fatal one fails it for good",
          "[pg][grpc]") {
  Running r = Start();
  auto sweep = Submit(r, "req-f", kOverlappingYaml).sweep();
  const int64_t worker = RegisterWorker(r, "host-f/0");
  auto first = Lease(r, worker);
  auto second = Lease(r, worker);
  REQUIRE(first.has_job());
  REQUIRE(second.has_job());
  auto fail = [&](const v1::LeaseResponse& lease, bool retryable, const std::string& reason) {
    v1::FailRequest req;
    req.set_worker_id(worker);
    req.set_job_id(lease.job_id());
    req.set_lease_epoch(lease.lease_epoch());
    req.set_reason(reason);
    req.set_retryable(retryable);
    v1::FailResponse resp;
    return r.worker->Fail(Ctx().get(), req, &resp);
  };
  REQUIRE_RPC_OK(fail(first, true, "worker ran out of disk"));
  REQUIRE_RPC_OK(fail(second, false, "config.json: missing"));
  const v1::Job retried = FindJob(r, first.job_id());
  CHECK(retried.state() == v1::JOB_STATE_PENDING);
  CHECK(retried.error().find("out of disk") != std::string::npos);
  const v1::Job failed = FindJob(r, second.job_id());
  CHECK(failed.state() == v1::JOB_STATE_FAILED);
  CHECK(failed.error().find("config.json") != std::string::npos);
  // A replayed Fail is OK and changes nothing (P10); the lease itself is gone.
  REQUIRE_RPC_OK(fail(first, true, "worker ran out of disk"));
  CHECK(FindJob(r, first.job_id()).attempt() == 1);
  v1::HeartbeatResponse hb;
  CHECK(Heartbeat(r, worker, first.job_id(), first.lease_epoch(), 0.5, "x", &hb).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);

  v1::ListJobsRequest only_failed;
  only_failed.set_sweep_id(sweep.id());
  only_failed.set_state(v1::JOB_STATE_FAILED);
  v1::ListJobsResponse listed;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), only_failed, &listed));
  REQUIRE(listed.jobs_size() == 1);
  CHECK(listed.jobs(0).id() == second.job_id());
}

TEST_CASE("a pending job can be canceled alone and unknown ids are NOT_FOUND", "[pg][grpc]") {
  Running r = Start();
  auto sweep = Submit(r, "req-j", kOverlappingYaml).sweep();
  v1::ListJobsRequest list;
  list.set_sweep_id(sweep.id());
  list.set_limit(1);
  v1::ListJobsResponse jobs;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), list, &jobs));
  REQUIRE(jobs.jobs_size() == 1);
  v1::CancelJobRequest cancel;
  cancel.set_job_id(jobs.jobs(0).id());
  v1::Job canceled;
  REQUIRE_RPC_OK(r.client->CancelJob(Ctx().get(), cancel, &canceled));
  CHECK(canceled.state() == v1::JOB_STATE_CANCELED);
  v1::GetSweepRequest get;
  get.set_sweep_id(sweep.id());
  v1::Sweep after;
  REQUIRE_RPC_OK(r.client->GetSweep(Ctx().get(), get, &after));
  CHECK(after.canceled() == 1);
  CHECK(after.pending() == 2);

  get.set_sweep_id(424242);
  CHECK(r.client->GetSweep(Ctx().get(), get, &after).error_code() == grpc::StatusCode::NOT_FOUND);
  auto ctx = Ctx();
  auto watch = r.client->WatchSweep(ctx.get(), get);
  v1::Sweep ignored;
  CHECK_FALSE(watch->Read(&ignored));
  CHECK(watch->Finish().error_code() == grpc::StatusCode::NOT_FOUND);
  v1::LeaseRequest lease;
  lease.set_worker_id(999);
  v1::LeaseResponse lease_resp;
  CHECK(r.worker->Lease(Ctx().get(), lease, &lease_resp).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

TEST_CASE(
    "a restarted coordinator leases to a worker registered before the restart without a new "
    "Register, and names it in the result's provenance",
    "[pg][grpc]") {
  const std::string db = testing::FreshDatabase();
  int64_t worker = 0;
  {
    Running before = Start({}, false, db);
    Submit(before, "req-restart", kSweepYaml);
    worker = RegisterWorker(before, "host-r/0");
  }
  Running r = Start({}, false, db);
  auto lease = Lease(r, worker);  // no Register on this coordinator process
  REQUIRE(lease.has_job());
  REQUIRE_RPC_OK(Complete(r, worker, lease.job_id(), lease.lease_epoch(), 3.5));
  v1::QueryResultsRequest query;
  v1::QueryResultsResponse results;
  REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), query, &results));
  REQUIRE(results.rows_size() == 1);
  CHECK(results.rows(0).provenance_json().find("host-r/0") != std::string::npos);
  auto next = Lease(r, worker);
  REQUIRE(next.has_job());
  CHECK(FindJob(r, next.job_id()).worker() == "host-r/0");
}

TEST_CASE(
    "a tensor-parallel job is leased to a worker with enough devices and tp, never a smaller one",
    "[pg][grpc]") {
  Running r = Start();
  Submit(r, "req-tp",
         "name: tp\nbaseline: true\nmodels: [{path: /nonexistent/big, devices: 2, tp: 2}]\n"
         "methods: [{method: rtn, wbits: [4]}]\ntasks: [wikitext2]\n");
  const int64_t one = RegisterWorker(r, "one-device", 1, 1);
  const int64_t no_tp = RegisterWorker(r, "two-devices-no-tp", 2, 1);
  const int64_t two = RegisterWorker(r, "two-devices", 2, 2);
  CHECK_FALSE(Lease(r, one).has_job());
  CHECK_FALSE(Lease(r, no_tp).has_job());
  auto lease = Lease(r, two);
  REQUIRE(lease.has_job());
  CHECK(lease.spec_json().find("\"tp\":2") != std::string::npos);
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
}  // namespace bitsweep::server
