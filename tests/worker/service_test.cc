// The worker's loop (RunWorker) against a real coordinator on a real PostgreSQL, reached through a
// decorator that injects faults into the worker's calls (real parts with switches, no mock of the
// coordinator, so the test exercises the code that runs in production). The job process is a shell
// script standing in for `bitsweep-worker run-job`: it writes the result file the test chooses.
#include "worker/service.h"

#include <prometheus/text_serializer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/time/clock.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/loopback_server.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"
#include "worker/metrics.h"
#include "worker/result_spool.h"
#include "worker/worker_state.h"

namespace bitsweep::worker {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

// Forwards every WorkerGateway call to the real coordinator, except that each method can be
// told to answer the next calls with an error instead (without forwarding), and Lease to drop
// the reply of the next call that leased a job (forwarded, so the lease happened).
class FaultyGateway final : public v1::WorkerGateway::Service {
 public:
  explicit FaultyGateway(int coordinator_port)
      : stub_(v1::WorkerGateway::NewStub(
            grpc::CreateChannel("127.0.0.1:" + std::to_string(coordinator_port),
                                grpc::InsecureChannelCredentials()))) {}

  void FailComplete(std::vector<grpc::StatusCode> codes) {
    std::lock_guard<std::mutex> lock(mu_);
    complete_faults_.assign(codes.begin(), codes.end());
  }
  void FailCompleteForever(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    complete_down_ = on;
  }
  void LoseNextLeaseReply() {
    std::lock_guard<std::mutex> lock(mu_);
    lose_lease_reply_ = true;
  }
  int complete_calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return complete_calls_;
  }
  int heartbeats() {
    std::lock_guard<std::mutex> lock(mu_);
    return heartbeats_;
  }
  int leases() {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(lease_request_ids_.size());
  }
  std::vector<std::string> lease_request_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return lease_request_ids_;
  }

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    return Forward(&v1::WorkerGateway::Stub::Register, *request, response);
  }
  grpc::Status Lease(grpc::ServerContext*, const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      lease_request_ids_.push_back(request->request_id());
    }
    grpc::Status s = Forward(&v1::WorkerGateway::Stub::Lease, *request, response);
    std::lock_guard<std::mutex> lock(mu_);
    if (s.ok() && response->has_job() && lose_lease_reply_) {
      lose_lease_reply_ = false;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: the reply was lost");
    }
    return s;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++heartbeats_;
    }
    return Forward(&v1::WorkerGateway::Stub::Heartbeat, *request, response);
  }
  grpc::Status Complete(grpc::ServerContext*, const v1::CompleteRequest* request,
                        v1::CompleteResponse* response) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++complete_calls_;
      if (complete_down_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: down");
      if (!complete_faults_.empty()) {
        const grpc::StatusCode code = complete_faults_.front();
        complete_faults_.pop_front();
        return grpc::Status(code, "injected");
      }
    }
    return Forward(&v1::WorkerGateway::Stub::Complete, *request, response);
  }
  grpc::Status Fail(grpc::ServerContext*, const v1::FailRequest* request,
                    v1::FailResponse* response) override {
    return Forward(&v1::WorkerGateway::Stub::Fail, *request, response);
  }

 private:
  template <typename Method, typename Request, typename Response>
  grpc::Status Forward(Method method, const Request& request, Response* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + seconds(20));
    return ((*stub_).*method)(&context, request, response);
  }

  std::unique_ptr<v1::WorkerGateway::Stub> stub_;
  std::mutex mu_;
  std::deque<grpc::StatusCode> complete_faults_;
  bool complete_down_ = false;
  bool lose_lease_reply_ = false;
  int complete_calls_ = 0, heartbeats_ = 0;
  std::vector<std::string> lease_request_ids_;
};

constexpr char kGoodResult[] =
    R"({"metrics": [{"name": "ppl", "value": 12.5, "stderr": 0.25, "n": 40}],)"
    R"( "provenance": {"seed": 3}})";

// A stand-in for `bitsweep-worker run-job` that writes `result` to its result file ($7) and
// exits with `code`.
std::string FakeJobBinary(const std::string& dir, const std::string& result, int code = 0) {
  testing::WriteFile(dir + "/result.json", result);
  const std::string path = dir + "/fake-worker";
  testing::WriteFile(path, "#!/bin/sh\ncp \"" + dir + "/result.json\" \"$7\"\nexit " +
                               std::to_string(code) + "\n");
  chmod(path.c_str(), 0755);
  return path;
}

// A coordinator with one pending job, the faulty gateway in front of it, and a worker loop
// running against the gateway in a thread (started by StartWorker).
struct Fixture {
  explicit Fixture(const std::string& name, double lease_ttl_seconds = 1.5,
                   int max_attempts = 2)
      : dir(testing::ScratchDir(name)) {
    server::ServerConfig config;
    config.db = testing::FreshDatabase();
    config.listen = "127.0.0.1:0";
    config.metrics_listen = "";
    config.lease_ttl = absl::Seconds(lease_ttl_seconds);
    config.reaper_interval = absl::Milliseconds(50);
    auto started = server::Coordinator::Start(config);
    if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
    coordinator = std::move(started).value();
    gateway = std::make_unique<FaultyGateway>(coordinator->port());
    loopback = std::make_unique<testing::LoopbackServer>(gateway.get());
    store::NewJob job;
    job.job_key = "job-1";
    job.spec_json = "{}";
    job.max_attempts = max_attempts;
    auto sweep = store().SubmitSweep("r1", "s", "{}", 0, {job}, absl::Now());
    REQUIRE(sweep.ok());
    auto jobs = store().ListJobs(*sweep);
    REQUIRE(jobs.ok());
    REQUIRE(jobs->size() == 1);
    job_id = jobs->front().id;
    options.coordinator = loopback->address();
    options.name = "w1";
    options.artifact_root = dir + "/artifacts";
    options.poll_seconds = 0.05;
    options.state_dir = dir + "/state";
  }
  ~Fixture() { StopWorker(); }

  store::JobStore& store() { return coordinator->store(); }
  void StartWorker(const std::string& self_exe) {
    options.self_exe = self_exe;
    stop = false;
    worker = std::thread([this] { worker_status = RunWorker(options, &stop, &metrics); });
  }
  void StopWorker() {
    stop = true;
    if (worker.joinable()) worker.join();
  }
  store::JobInfo Job() {
    auto job = store().GetJob(job_id);
    REQUIRE(job.ok());
    return *job;
  }
  bool JobIs(JobState state) {
    auto job = store().GetJob(job_id);
    return job.ok() && job->state == state;
  }
  std::vector<std::string> Spooled() {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(options.state_dir + "/spool", ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("job-", 0) == 0) files.push_back(name);
    }
    return files;
  }
  std::string Metrics() {
    return prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
  }
  bool Counted(const std::string& series, int n) {
    return Metrics().find(series + " " + std::to_string(n) + "\n") != std::string::npos;
  }

  std::string dir;
  std::unique_ptr<server::Coordinator> coordinator;
  std::unique_ptr<FaultyGateway> gateway;
  std::unique_ptr<testing::LoopbackServer> loopback;
  int64_t job_id = 0;
  WorkerOptions options;
  WorkerMetrics metrics{kWorkerVersion};
  std::atomic<bool> stop{false};
  std::thread worker;
  Status worker_status;
};

bool Eventually(const std::function<bool()>& condition, int seconds_limit = 30) {
  return testing::WaitUntil(condition, std::chrono::seconds(seconds_limit),
                            std::chrono::milliseconds(20));
}

TEST_CASE(
    "a finished result survives DEADLINE_EXCEEDED, INTERNAL and ABORTED answers to Complete: "
    "the worker retries while it heartbeats, and the first attempt succeeds",
    "[pg][grpc][worker]") {
  Fixture f("service_complete_retries");
  f.gateway->FailComplete({grpc::StatusCode::DEADLINE_EXCEEDED, grpc::StatusCode::INTERNAL,
                           grpc::StatusCode::ABORTED, grpc::StatusCode::RESOURCE_EXHAUSTED});
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  REQUIRE(Eventually([&] { return f.gateway->complete_calls() >= 1; }));
  const int heartbeats_before = f.gateway->heartbeats();
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kSucceeded); }));
  CHECK(f.gateway->complete_calls() == 5);
  // Backoff 0.25 + 0.5 + 1 + 2 s with a heartbeat every 0.5 s: the lease was kept meanwhile.
  CHECK(f.gateway->heartbeats() - heartbeats_before >= 3);
  const store::JobInfo job = f.Job();
  CHECK(job.attempt == 1);
  CHECK(job.lease_epoch == 1);
  auto results = f.store().Results({});
  REQUIRE(results.ok());
  REQUIRE(results->size() == 1);
  CHECK(results->front().value == 12.5);
  CHECK(Eventually([&] { return f.Spooled().empty(); }));  // removed once Complete answered
  CHECK(f.Counted("bitsweep_worker_complete_retries_total", 4));
  f.StopWorker();
  CHECK(f.worker_status.ok());
}

TEST_CASE("a result spooled by a worker that stopped is delivered by the next start on its state "
          "directory",
          "[pg][grpc][worker]") {
  Fixture f("service_spool_restart", /*lease_ttl_seconds=*/6);
  f.gateway->FailCompleteForever(true);
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  REQUIRE(Eventually([&] { return f.gateway->complete_calls() >= 2; }));
  REQUIRE(f.Spooled() == std::vector<std::string>{"job-" + std::to_string(f.job_id) +
                                                  "-epoch-1.json"});
  f.StopWorker();
  CHECK(f.JobIs(JobState::kLeased));
  CHECK(f.Spooled().size() == 1);  // the shutdown left it there

  // The next start, with a job binary that would fail: the result comes from the spool.
  f.gateway->FailCompleteForever(false);
  f.StartWorker(FakeJobBinary(f.dir, "", 1));
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kSucceeded); }));
  CHECK(f.Job().attempt == 1);
  auto results = f.store().Results({});
  REQUIRE(results.ok());
  REQUIRE(results->size() == 1);
  CHECK(results->front().metric == "ppl");
  CHECK(results->front().value == 12.5);
  CHECK(results->front().n == 40);
  CHECK(Eventually([&] { return f.Spooled().empty(); }));  // removed once Complete answered
}

TEST_CASE("a spooled result whose lease was fenced is discarded with a log line and a metric",
          "[pg][grpc][worker]") {
  Fixture f("service_spool_fenced", /*lease_ttl_seconds=*/1.5, /*max_attempts=*/3);
  f.gateway->FailCompleteForever(true);
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  REQUIRE(Eventually([&] { return !f.Spooled().empty(); }));
  // The reaper of a coordinator that lost touch with the worker: the lease expires.
  REQUIRE(f.store().ExpireLeases(absl::Now() + absl::Seconds(2)).ok());  // past its deadline
  f.gateway->FailCompleteForever(false);
  REQUIRE(Eventually([&] {
    return f.Counted("bitsweep_worker_results_discarded_total{reason=\"fenced\"}", 1);
  }));
  // The next attempt (epoch 2) runs and succeeds; the fenced result never landed.
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kSucceeded); }));
  CHECK(f.Job().lease_epoch == 2);
  auto results = f.store().Results({});
  REQUIRE(results.ok());
  REQUIRE(results->size() == 1);
  CHECK(results->front().provenance_json.find("\"lease_epoch\":2") != std::string::npos);
  CHECK(Eventually([&] { return f.Spooled().empty(); }));  // removed once Complete answered
}

TEST_CASE("a spooled result leased from another coordinator database is discarded, never sent",
          "[pg][grpc][worker]") {
  Fixture f("service_spool_other_database");
  // Job 1 is held under epoch 1 here by another worker: the very fence a stale result of another
  // deployment would match.
  store::WorkerInfo other;
  other.name = "other";
  auto other_id = f.store().RegisterWorker(other, absl::Now());
  REQUIRE(other_id.ok());
  auto held = f.store().Lease(*other_id, absl::Now(), absl::Hours(1));
  REQUIRE(held.ok());
  REQUIRE(held->has_value());
  REQUIRE((*held)->epoch == 1);
  {
    auto spool = ResultSpool::Open(f.options.state_dir + "/spool");
    REQUIRE(spool.ok());
    JobLease lease;
    lease.worker_id = 1;
    lease.job_id = f.job_id;
    lease.lease_epoch = 1;
    lease.attempt = 1;
    REQUIRE((*spool)->Put(lease, {{"ppl", 99.0, 0, 1}}, "{}", "another-database").ok());
  }
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  REQUIRE(Eventually([&] {
    return f.Counted("bitsweep_worker_results_discarded_total{reason=\"other_database\"}", 1);
  }));
  CHECK(Eventually([&] { return f.Spooled().empty(); }));  // removed once Complete answered
  CHECK(f.gateway->complete_calls() == 0);
  CHECK(f.JobIs(JobState::kLeased));
}

TEST_CASE("a non-finite metric fails the job for good, naming the metric", "[pg][grpc][worker]") {
  Fixture f("service_nonfinite", 1.5, /*max_attempts=*/3);
  // What nlohmann::json writes for a NaN or infinite double: null.
  f.StartWorker(FakeJobBinary(
      f.dir, R"({"metrics": [{"name": "ppl", "value": null, "stderr": 0, "n": 8}],)"
             R"( "provenance": {}})"));
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kFailed); }));
  const store::JobInfo job = f.Job();
  CHECK(job.attempt == 1);  // not retried: every attempt would diverge the same way
  CHECK(job.last_error == "ppl is not a finite number: the quantized model diverges");
}

TEST_CASE("a result file that cannot be read fails the job and the worker goes on",
          "[pg][grpc][worker]") {
  const char* unreadable[] = {
      "not json",
      R"({"metrics": [{"value": 1}], "provenance": {}})",  // a metric without a name
      R"({"metrics": [3], "provenance": {}})",
      R"({"metrics": [{"name": "acc", "value": "high"}], "provenance": {}})"};
  for (const char* result : unreadable) {
    INFO(result);
    Fixture f("service_unreadable", 1.5, /*max_attempts=*/2);
    f.StartWorker(FakeJobBinary(f.dir, result));
    REQUIRE(Eventually([&] { return f.JobIs(JobState::kFailed); }));
    CHECK(f.Job().attempt == 2);
    const int leases = f.gateway->leases();
    REQUIRE(Eventually([&] { return f.gateway->leases() > leases + 2; }));  // still leasing
    f.StopWorker();
    CHECK(f.worker_status.ok());
  }
}

TEST_CASE("a Lease whose reply was lost is sent again with the same request id and gets the same "
          "job and attempt",
          "[pg][grpc][worker]") {
  Fixture f("service_lease_replay", /*lease_ttl_seconds=*/30);
  f.gateway->LoseNextLeaseReply();
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  // With a 30 s TTL, the job could not be leased again before the test's deadline: only the
  // replay gets it back.
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kSucceeded); }, 20));
  CHECK(f.Job().attempt == 1);
  const std::vector<std::string> ids = f.gateway->lease_request_ids();
  REQUIRE(ids.size() >= 2);
  CHECK_FALSE(ids[0].empty());
  CHECK(ids[1] == ids[0]);  // the retry of the lost one
  std::set<std::string> distinct(ids.begin(), ids.end());
  CHECK(distinct.size() < ids.size());
  if (ids.size() >= 3) CHECK(ids[2] != ids[1]);  // answered: the next lease is a new one
}

TEST_CASE("a second worker under a live worker's name is refused at Register, naming the holder",
          "[pg][grpc][worker]") {
  Fixture f("service_name_taken");
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  REQUIRE(Eventually([&] { return f.JobIs(JobState::kSucceeded); }));  // "w1" is registered
  WorkerOptions second = f.options;
  second.state_dir = f.dir + "/state-of-another";  // another process: another session
  std::atomic<bool> stop{false};
  auto second_run = std::async(std::launch::async, [&] { return RunWorker(second, &stop); });
  const bool ended = second_run.wait_for(seconds(30)) == std::future_status::ready;
  stop = true;  // had it been let in, it would run until stopped
  const Status refused = second_run.get();
  CHECK(ended);
  CHECK(refused.code() == absl::StatusCode::kAlreadyExists);
  CHECK(refused.message().find("the worker name 'w1' is held by a live worker") !=
        absl::string_view::npos);
  // The same worker restarted on its state directory takes its name back at once.
  f.StopWorker();
  f.StartWorker(FakeJobBinary(f.dir, kGoodResult));
  const int leases = f.gateway->leases();
  REQUIRE(Eventually([&] { return f.gateway->leases() > leases; }));
  f.StopWorker();
  CHECK(f.worker_status.ok());
}

TEST_CASE("a worker without a name is <host>-<random>, and its state directory keeps its name "
          "and session across restarts",
          "[worker]") {
  const std::string dir = testing::ScratchDir("worker_state_identity");
  std::string name, session;
  {
    auto state = OpenWorkerState(dir + "/state", "", "127.0.0.1:1");
    REQUIRE(state.ok());
    name = state->name;
    session = state->session;
    CHECK(name.rfind(HostName() + "-", 0) == 0);
    CHECK(name.size() == HostName().size() + 7);
    CHECK(session.size() == 32);
  }
  auto again = OpenWorkerState(dir + "/state", "", "127.0.0.1:1");
  REQUIRE(again.ok());
  CHECK(again->name == name);
  CHECK(again->session == session);
  auto named = OpenWorkerState(dir + "/named", "w7", "127.0.0.1:1");
  REQUIRE(named.ok());
  CHECK(named->name == "w7");

  // Two unnamed workers of one host at once: each its own default directory, name and session.
  const std::string coordinator = "test-" + std::to_string(::getpid()) + ":1";
  auto a = OpenWorkerState("", "", coordinator);
  auto b = OpenWorkerState("", "", coordinator);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->dir != b->dir);
  CHECK(a->name != b->name);
  CHECK(a->session != b->session);
  const std::string a_dir = a->dir, b_dir = b->dir;
  a->spool.reset();
  b->spool.reset();
  fs::remove_all(a_dir);
  fs::remove_all(b_dir);
}

TEST_CASE("a worker's default state directory is under $XDG_STATE_HOME (else ~/.local/state), "
          "not /tmp",
          "[worker]") {
  const std::string dir = testing::ScratchDir("worker_state_home");
  const char* old_xdg = std::getenv("XDG_STATE_HOME");
  const char* old_home = std::getenv("HOME");
  const std::string saved_xdg = old_xdg ? old_xdg : "", saved_home = old_home ? old_home : "";
  ::setenv("XDG_STATE_HOME", (dir + "/xdg").c_str(), 1);
  ::setenv("HOME", (dir + "/home").c_str(), 1);
  {
    auto state = OpenWorkerState("", "w9", "127.0.0.1:5");
    REQUIRE(state.ok());
    CHECK(state->dir == dir + "/xdg/bitsweep/worker/w9@127.0.0.1_5");
    CHECK(fs::is_directory(state->dir + "/spool"));
  }
  ::setenv("XDG_STATE_HOME", "relative/ignored", 1);  // the XDG rules: only absolute paths
  {
    auto state = OpenWorkerState("", "w9", "127.0.0.1:5");
    REQUIRE(state.ok());
    CHECK(state->dir == dir + "/home/.local/state/bitsweep/worker/w9@127.0.0.1_5");
  }
  if (old_xdg) {
    ::setenv("XDG_STATE_HOME", saved_xdg.c_str(), 1);
  } else {
    ::unsetenv("XDG_STATE_HOME");
  }
  ::setenv("HOME", saved_home.c_str(), 1);
}

TEST_CASE("two workers cannot share one state directory", "[worker]") {
  const std::string dir = testing::ScratchDir("service_state_lock");
  auto held = ResultSpool::Open(dir + "/state/spool");  // a live worker's
  REQUIRE(held.ok());
  WorkerOptions o;
  o.coordinator = "127.0.0.1:1";
  o.name = "a";
  o.artifact_root = dir;
  o.state_dir = dir + "/state";
  std::atomic<bool> stop{true};
  const Status refused = RunWorker(o, &stop);
  CHECK(refused.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(refused.message().find("in use by another worker") != absl::string_view::npos);
  held->reset();
  CHECK(ResultSpool::Open(dir + "/state/spool").ok());  // free again once its holder is gone
}

TEST_CASE("a worker refuses a remote --metrics-listen without TLS or --insecure-allow-remote "
          "before anything starts",
          "[worker]") {
  const std::string dir = testing::ScratchDir("service_remote_metrics");
  WorkerOptions o;
  o.coordinator = "127.0.0.1:1";
  o.name = "a";
  o.artifact_root = dir;
  o.state_dir = dir + "/state";
  o.metrics_listen = "0.0.0.0:0";
  std::atomic<bool> stop{true};
  const Status refused = RunWorker(o, &stop);
  CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.message() ==
        "metrics_listen: '0.0.0.0:0' is not a loopback address; remote /metrics needs TLS "
        "(--metrics-tls-cert, --metrics-tls-key, optionally --metrics-tls-ca for client "
        "certificates) or --insecure-allow-remote on a trusted network");
  CHECK_FALSE(fs::exists(dir + "/state"));  // refused before the state directory is made
  o.metrics_listen = "127.example.com:0";  // parsed, not prefix-matched
  CHECK(RunWorker(o, &stop).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a worker's remote --metrics-listen with a metrics certificate passes the remote rule "
          "and its TLS files are checked at start, the flag named",
          "[worker]") {
  const std::string dir = testing::ScratchDir("service_remote_metrics_tls");
  WorkerOptions o;
  o.coordinator = "127.0.0.1:1";
  o.name = "a";
  o.artifact_root = dir;
  o.state_dir = dir + "/state";
  o.metrics_listen = "0.0.0.0:0";
  o.metrics_tls_cert = dir + "/missing.pem";
  o.metrics_tls_key = dir + "/missing.key";
  std::atomic<bool> stop{true};
  const Status refused = RunWorker(o, &stop);
  CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.message().find("--metrics-tls-cert '" + dir + "/missing.pem': cannot be read") ==
        0);
}

}  // namespace
}  // namespace bitsweep::worker
