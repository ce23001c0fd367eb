// The lease reaper's grace (server/lease_reaper.h): pure rule on given times, then a real
// coordinator on a real PostgreSQL, restarted and cut off from its database.
#include "server/lease_reaper.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <chrono>

#include "absl/time/clock.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const absl::Duration kTtl = absl::Seconds(60);

TEST_CASE("the reaper expires nothing for one lease TTL after the coordinator starts") {
  LeaseGrace grace(kTtl, kT0);
  CHECK_FALSE(grace.MayExpire(kT0));
  CHECK_FALSE(grace.MayExpire(kT0 + kTtl - absl::Milliseconds(1)));
  CHECK(grace.MayExpire(kT0 + kTtl));
}

TEST_CASE("the reaper expires nothing while the database is out of reach, nor for one lease TTL "
          "after it is back") {
  LeaseGrace grace(kTtl, kT0);
  const absl::Time t1 = kT0 + absl::Minutes(5);
  grace.Observe(true, t1);
  CHECK(grace.MayExpire(t1));
  grace.Observe(false, t1 + absl::Seconds(1));  // UNAVAILABLE
  CHECK_FALSE(grace.MayExpire(t1 + absl::Minutes(30)));
  const absl::Time back = t1 + absl::Minutes(30);
  grace.Observe(true, back);
  CHECK_FALSE(grace.MayExpire(back));
  CHECK_FALSE(grace.MayExpire(back + kTtl - absl::Milliseconds(1)));
  CHECK(grace.MayExpire(back + kTtl));
  // Successes in a row start nothing new.
  grace.Observe(true, back + kTtl);
  CHECK(grace.MayExpire(back + kTtl));
}

struct Coordinated {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
};

Coordinated StartCoordinator(const std::string& db, absl::Duration ttl) {
  ServerConfig config;
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = db;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.lease_ttl = ttl;
  config.reaper_interval = absl::Milliseconds(20);
  auto started = Coordinator::Start(config);
  if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
  Coordinated c;
  c.coordinator = std::move(started).value();
  c.worker = v1::WorkerGateway::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(c.coordinator->port()),
                          grpc::InsecureChannelCredentials()));
  return c;
}

grpc::Status Heartbeat(Coordinated& c, const store::LeasedJob& lease, int64_t worker_id) {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id);
  request.set_job_id(lease.job_id);
  request.set_lease_epoch(lease.epoch);
  v1::HeartbeatResponse response;
  return c.worker->Heartbeat(testing::RpcContext().get(), request, &response);
}

bool StillLeased(store::JobStore& store, int64_t job_id) {
  auto job = store.GetJob(job_id);
  return !job.ok() || job->state == JobState::kLeased;  // unreadable: nothing expired it yet
}

// A job leased to worker "w" under `ttl`, leased `ago` before now.
store::LeasedJob LeaseOneJob(const std::string& db, absl::Duration ago, absl::Duration ttl,
                             int64_t* worker_id) {
  auto store = store::JobStore::Open(db);
  REQUIRE(store.ok());
  store::NewJob job;
  job.job_key = "k";
  job.spec_json = "{}";
  REQUIRE((*store)->SubmitSweep("r", "s", "{}", 0, {job}, absl::Now() - ago).ok());
  store::WorkerInfo w;
  w.name = "w";
  auto id = (*store)->RegisterWorker(w, absl::Now() - ago);
  REQUIRE(id.ok());
  *worker_id = *id;
  auto leased = (*store)->Lease(*id, absl::Now() - ago, ttl);
  REQUIRE(leased.ok());
  REQUIRE(leased->has_value());
  return **leased;
}

TEST_CASE("a coordinator that starts after its workers' leases ran out lets them heartbeat for "
          "one lease TTL before its reaper expires anything",
          "[pg][grpc]") {
  const std::string db = testing::FreshDatabase();
  int64_t worker_id = 0;
  // Leased ten minutes ago with a 2 s TTL: the coordinator has been down since.
  const store::LeasedJob lease = LeaseOneJob(db, absl::Minutes(10), absl::Seconds(2), &worker_id);
  Coordinated c = StartCoordinator(db, absl::Seconds(2));
  // The reaper runs every 20 ms; for its first second it must leave the lease alone.
  CHECK_FALSE(testing::WaitUntil([&] { return !StillLeased(c.coordinator->store(), lease.job_id); },
                                 std::chrono::milliseconds(1000)));
  REQUIRE_RPC_OK(Heartbeat(c, lease, worker_id));
  // A worker that stays silent loses the lease once the renewed deadline has passed.
  CHECK(testing::WaitUntil([&] { return !StillLeased(c.coordinator->store(), lease.job_id); },
                           std::chrono::seconds(20)));
}

TEST_CASE("after a database outage longer than the lease TTL the reaper waits one lease TTL "
          "before expiring leases, so live workers keep their jobs",
          "[pg][grpc][fault]") {
  auto pg = testing::StartPostgres(testing::ScratchDir("reaper_outage"));
  auto db = pg->CreateDatabase("reaper");
  REQUIRE(db.ok());
  int64_t worker_id = 0;
  const store::LeasedJob lease = LeaseOneJob(*db, absl::ZeroDuration(), absl::Seconds(1), &worker_id);
  Coordinated c = StartCoordinator(*db, absl::Seconds(1));
  // A live worker past the start's grace: heartbeats every 200 ms keep its lease.
  const absl::Time start_grace_over = absl::Now() + absl::Seconds(1.5);
  REQUIRE(testing::WaitUntil(
      [&] {
        REQUIRE_RPC_OK(Heartbeat(c, lease, worker_id));
        return absl::Now() > start_grace_over;
      },
      std::chrono::seconds(10), std::chrono::milliseconds(200)));

  REQUIRE(pg->Stop().ok());
  // Twice the TTL without a database: every heartbeat fails, the deadline passes.
  const absl::Time outage_end = absl::Now() + absl::Seconds(2);
  REQUIRE(testing::WaitUntil([&] { return absl::Now() > outage_end; }, std::chrono::seconds(10)));
  CHECK_FALSE(Heartbeat(c, lease, worker_id).ok());
  REQUIRE(pg->StartAgain().ok());

  // Back: the reaper holds for a TTL (1 s); the worker's next heartbeat lands within it.
  CHECK_FALSE(testing::WaitUntil([&] { return !StillLeased(c.coordinator->store(), lease.job_id); },
                                 std::chrono::milliseconds(500)));
  REQUIRE_RPC_OK(Heartbeat(c, lease, worker_id));
  auto job = c.coordinator->store().GetJob(lease.job_id);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kLeased);
  CHECK(job->lease_epoch == lease.epoch);
  c.coordinator->Shutdown(absl::ZeroDuration());
}

}  // namespace
}  // namespace bitsweep::server
