// The coordinator's job lifecycle over gRPC: sweeps submitted and validated, leases, heartbeats,
// completion, expiry, retries, cancellation, restarts and tensor-parallel placement.
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

namespace bitsweep::server::coordinator_test {
namespace {

// Shares the baseline and rtn w4 with kSweepYaml; adds rtn w3.
constexpr const char* kOverlappingYaml = R"(name: overlap
models: [/nonexistent/qwen3-tiny]
methods:
  - method: rtn
    wbits: [3, 4]
tasks: [wikitext2]
)";

int64_t TotalJobsInStore(Running& r) {
  auto counts = r.coordinator->store().CountJobsByState();
  REQUIRE(counts.ok());
  int64_t total = 0;
  for (const auto& [state, n] : *counts) total += n;
  return total;
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
  SECTION("a sweep with a run_tag shares no job with untagged sweeps, only with its own tag") {
    const std::string tagged = std::string("run_tag: v2\n") + kOverlappingYaml;
    auto second = Submit(r, "req-tag-1", tagged);
    CHECK(second.sweep().total() == 3);  // fp, rtn w3, rtn w4: all new, the baseline too
    CHECK(second.sweep().run_tag() == "v2");
    CHECK(resp.sweep().run_tag().empty());
    v1::GetSweepRequest get;
    get.set_sweep_id(second.sweep().id());
    v1::Sweep got;
    REQUIRE_RPC_OK(r.client->GetSweep(Ctx().get(), get, &got));
    CHECK(got.run_tag() == "v2");
    CHECK(TotalJobsInStore(r) == 6);
    v1::ListJobsRequest list_tagged;
    list_tagged.set_sweep_id(second.sweep().id());
    v1::ListJobsResponse tagged_jobs;
    REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), list_tagged, &tagged_jobs));
    REQUIRE(tagged_jobs.jobs_size() == 3);
    for (const auto& job : tagged_jobs.jobs()) {
      CHECK(keys.count(job.job_key()) == 0);
      CHECK(job.job_key().find(";run_tag=v2") != std::string::npos);
      CHECK(job.spec_json().find("\"run_tag\":\"v2\"") != std::string::npos);
    }
    auto third = Submit(r, "req-tag-2", tagged);  // the same tag again: shared, nothing new
    CHECK(third.sweep().id() != second.sweep().id());
    CHECK(TotalJobsInStore(r) == 6);
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

TEST_CASE(
    "a sweep over --max-jobs-per-sweep is INVALID_ARGUMENT naming its count and the limit "
    "and stores nothing",
    "[pg][grpc]") {
  ServerConfig config;
  config.max_jobs_per_sweep = 3;  // kOverlappingYaml's grid: baseline, rtn w3, rtn w4 = 3 jobs
  Running r = Start(config);
  grpc::Status st;
  Submit(r, "req-over", kSweepYaml, &st);  // baseline + rtn w4 + billm w4 + billm w1 = 4
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(st.error_message() ==
        "sweep small: its grid is 4 jobs (1 models x 4 configurations x 1 tasks), over the limit "
        "of 3 jobs per sweep");
  CHECK(TotalJobsInStore(r) == 0);
  CHECK(Submit(r, "req-at-limit", kOverlappingYaml).sweep().total() == 3);
}

TEST_CASE(
    "a sweep whose model folders or task files are missing is refused with every problem "
    "listed and stores nothing, once they exist it is accepted",
    "[pg][grpc]") {
  const std::string dir = testing::ScratchDir("coordinator_input_checks");
  std::filesystem::create_directories(dir + "/partial");
  std::ofstream(dir + "/partial/config.json") << "{}";
  Running r = Start(ServerConfig{}, false, "", /*check_inputs=*/true);
  const std::string yaml = "name: inputs\nmodels: [" + dir + "/partial, " + dir +
                           "/absent]\nmethods: [{method: rtn, wbits: [4]}]\ntasks: [wikitext2, " +
                           dir + "/facts.jsonl]\n";
  grpc::Status status;
  Submit(r, "inputs-1", yaml, &status);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // wikitext2's data lives with the workers: not checked here.
  CHECK(status.error_message() ==
        "test.yaml: 4 problems with what the jobs read (nothing was "
        "stored):\n  model " +
            dir + "/partial: no weights (*.safetensors)\n  model " + dir +
            "/partial: no tokenizer.json\n  model " + dir + "/absent: no such folder\n  task " +
            dir + "/facts.jsonl: no such file");
  CHECK(TotalJobsInStore(r) == 0);
  v1::ListSweepsResponse sweeps;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &sweeps));
  CHECK(sweeps.sweeps_size() == 0);

  for (const std::string m : {"/partial", "/absent"}) {
    std::filesystem::create_directories(dir + m);
    std::ofstream(dir + m + "/config.json") << "{}";
    std::ofstream(dir + m + "/model.safetensors") << "";
    std::ofstream(dir + m + "/tokenizer.json") << "{}";
  }
  std::ofstream(dir + "/facts.jsonl") << "{}\n";
  Submit(r, "inputs-2", yaml, &status);
  CHECK(status.ok());
  CHECK(TotalJobsInStore(r) > 0);
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
  // The time since its lease, and what is left at that rate (a quarter done: three times it).
  CHECK(running.elapsed_seconds() > 0);
  CHECK(running.elapsed_seconds() < 30);
  CHECK(running.eta_seconds() == Approx(3 * running.elapsed_seconds()));

  SECTION("a call with a stale epoch is FAILED_PRECONDITION and changes nothing") {
    grpc::Status st = Complete(r, worker, first, epochs[first] + 1, 1.0);
    CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    st = Heartbeat(r, worker, first, epochs[first] - 1, 0.5, "x", &hb);
    CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK(FindJob(r, first).state() == v1::JOB_STATE_LEASED);
    v1::QueryResultsResponse none;
    REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), v1::QueryResultsRequest(), &none));
    CHECK(none.jobs_size() == 0);
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
  REQUIRE(results.jobs_size() == 3);
  std::set<int64_t> result_jobs;
  for (const auto& row : results.jobs()) {
    result_jobs.insert(row.job_id());
    REQUIRE(row.metrics_size() == 1);
    CHECK(row.metrics(0).name() == "ppl");
    CHECK(row.metrics(0).n() == 32);
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
  REQUIRE(results.jobs_size() == 1);
  CHECK(results.jobs(0).provenance_json().find("host-r/0") != std::string::npos);
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

TEST_CASE(
    "SubmitSweep says how many jobs are new, reused from stored results, run again or "
    "shared",
    "[pg][grpc]") {
  Running r = Start();
  auto first = Submit(r, "req-1", kSweepYaml);
  CHECK(first.new_jobs() == 3);
  CHECK(first.reused_jobs() == 0);
  CHECK(first.rerun_jobs() == 0);
  CHECK(first.shared_jobs() == 0);
  CHECK(first.skipped_size() == 1);

  // One job succeeds, one is canceled, the third stays pending.
  const int64_t worker = RegisterWorker(r, "host-c/0");
  auto lease = Lease(r, worker);
  REQUIRE(lease.has_job());
  REQUIRE_RPC_OK(Complete(r, worker, lease.job_id(), lease.lease_epoch(), 3.5));
  v1::ListJobsRequest list;
  list.set_sweep_id(first.sweep().id());
  v1::ListJobsResponse jobs;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), list, &jobs));
  int64_t canceled = 0;
  for (const auto& job : jobs.jobs()) {
    if (job.id() != lease.job_id() && canceled == 0) canceled = job.id();
  }
  v1::CancelJobRequest cancel;
  cancel.set_job_id(canceled);
  v1::Job job;
  REQUIRE_RPC_OK(r.client->CancelJob(Ctx().get(), cancel, &job));

  auto second = Submit(r, "req-2", kSweepYaml);
  CHECK_FALSE(second.replayed());
  CHECK(second.sweep().total() == 3);
  CHECK(second.new_jobs() == 0);
  CHECK(second.reused_jobs() == 1);
  CHECK(second.rerun_jobs() == 1);
  CHECK(second.shared_jobs() == 1);
  CHECK(second.skipped_size() == 1);

  auto replay = Submit(r, "req-2", kSweepYaml);
  CHECK(replay.replayed());
  CHECK(replay.new_jobs() + replay.reused_jobs() + replay.rerun_jobs() + replay.shared_jobs() == 0);
}

}  // namespace
}  // namespace bitsweep::server::coordinator_test
