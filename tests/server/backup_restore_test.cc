// The backup and restore procedure of docs/operations.md, run for real: pg_dump while the
// coordinator serves, pg_restore --clean into the same database after it stopped, and a
// coordinator that starts on the restored state.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

namespace fs = std::filesystem;

constexpr const char* kBeforeDump = R"(name: before-dump
models: [/nonexistent/qwen3-tiny]
methods:
  - method: rtn
    wbits: [3, 4]
tasks: [wikitext2]
)";

constexpr const char* kAfterDump = R"(name: after-dump
models: [/nonexistent/qwen3-other]
methods:
  - method: rtn
    wbits: [4]
tasks: [wikitext2]
)";

struct Running {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<v1::Coordinator::Stub> client;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
};

Running Start(const std::string& db, absl::Duration lease_ttl, absl::Duration reaper_interval) {
  ServerConfig config;
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = db;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.lease_ttl = lease_ttl;
  config.reaper_interval = reaper_interval;
  auto started = Coordinator::Start(config);
  if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
  Running r;
  r.coordinator = std::move(started).value();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(r.coordinator->port()),
                                     grpc::InsecureChannelCredentials());
  r.client = v1::Coordinator::NewStub(channel);
  r.worker = v1::WorkerGateway::NewStub(channel);
  return r;
}

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::RpcContext(); }

void Submit(Running& r, const std::string& request_id, const std::string& yaml) {
  v1::SubmitSweepRequest req;
  req.set_request_id(request_id);
  req.set_sweep_yaml(yaml);
  req.set_source_name("test.yaml");
  v1::SubmitSweepResponse resp;
  REQUIRE_RPC_OK(r.client->SubmitSweep(Ctx().get(), req, &resp));
}

std::vector<v1::Sweep> Sweeps(Running& r) {
  v1::ListSweepsResponse resp;
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), v1::ListSweepsRequest(), &resp));
  return {resp.sweeps().begin(), resp.sweeps().end()};
}

// A PostgreSQL client program of the same installation as the test server.
std::string PgBin(const std::string& name) {
  const std::string debian = "/usr/lib/postgresql/15/bin/" + name;
  return fs::exists(debian) ? debian : name;
}

int RunCommand(const std::string& command) {
  INFO(command);
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE(
    "a pg_dump taken while the coordinator serves restores with pg_restore --clean into "
    "the state it recorded, and a leased job is offered again",
    "[pg][grpc]") {
  const std::string db = testing::FreshDatabase();
  const fs::path dump =
      fs::temp_directory_path() / ("bitsweep-backup-test-" + std::to_string(getpid()) + ".dump");
  int64_t leased_job = 0;
  {
    // No reaper during the test's life: the lease is still held when the dump is taken.
    Running a = Start(db, absl::Seconds(1), absl::Hours(1));
    Submit(a, "before", kBeforeDump);
    v1::RegisterRequest reg;
    reg.set_name("w");
    reg.set_devices(1);
    reg.set_memory_gb(64);
    reg.set_max_tp(1);
    v1::RegisterResponse reg_resp;
    REQUIRE_RPC_OK(a.worker->Register(Ctx().get(), reg, &reg_resp));
    v1::LeaseRequest lease;
    lease.set_worker_id(reg_resp.worker_id());
    v1::LeaseResponse lease_resp;
    REQUIRE_RPC_OK(a.worker->Lease(Ctx().get(), lease, &lease_resp));
    REQUIRE(lease_resp.has_job());
    leased_job = lease_resp.job_id();

    // docs/operations.md's backup command, while the coordinator holds its connections.
    REQUIRE(RunCommand(PgBin("pg_dump") + " --format=custom -d '" + db + "' -f '" + dump.string() +
                       "'") == 0);
    Submit(a, "after", kAfterDump);  // state the restore must drop
    REQUIRE(Sweeps(a).size() == 2);
  }  // the coordinator stops, as docs/operations.md's restore asks

  REQUIRE(RunCommand(PgBin("pg_restore") +
                     " --clean --if-exists --no-owner --single-transaction -d '" + db + "' '" +
                     dump.string() + "'") == 0);
  fs::remove(dump);

  Running b = Start(db, absl::Seconds(1), absl::Milliseconds(50));
  const std::vector<v1::Sweep> sweeps = Sweeps(b);
  REQUIRE(sweeps.size() == 1);
  CHECK(sweeps[0].name() == "before-dump");
  CHECK(sweeps[0].total() == 3);  // the baseline, rtn w3 and rtn w4
  // The lease recorded in the dump has expired: the reaper returns the job to pending.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  v1::JobState state = v1::JOB_STATE_LEASED;
  while (std::chrono::steady_clock::now() < deadline) {
    v1::ListJobsResponse jobs;
    REQUIRE_RPC_OK(b.client->ListJobs(Ctx().get(), v1::ListJobsRequest(), &jobs));
    for (const auto& job : jobs.jobs()) {
      if (job.id() == leased_job) state = job.state();
    }
    if (state == v1::JOB_STATE_PENDING) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(state == v1::JOB_STATE_PENDING);
  // The request id of the sweep submitted after the dump is free again.
  Submit(b, "after", kAfterDump);
  CHECK(Sweeps(b).size() == 2);
}

}  // namespace
}  // namespace bitsweep::server
