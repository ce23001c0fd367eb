// Leasing (store/lease.cc): ranking by priority, held artifacts and fairness, fit to the
// worker's devices and memory, persisted registrations, concurrency and LeaseMany.
#include "store/job_store.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <set>
#include <thread>

#include "store/migrations.h"
#include "tests/store/job_store_testing.h"
#include "tests/testing/local_pg.h"

namespace bitsweep::store::job_store_test {
namespace {

TEST_CASE("lease takes the highest priority job that fits the worker and is due", "[pg]") {
  auto store = OpenFresh();
  NewJob big = Job("big", 10);
  big.needs.devices = 2;
  big.needs.memory_gb = 80;
  NewJob low = Job("low", 1);
  NewJob mid = Job("mid", 5);
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {low, big, mid}, kT0));
  const int64_t cpu = Worker(*store, "cpu");
  const int64_t gpu = Worker(*store, "gpu", {2, 96, 1});

  CHECK(MustLease(*store, cpu, kT0).job_key == "mid");  // big does not fit a CPU worker
  CHECK(MustLease(*store, gpu, kT0).job_key == "big");
  LeasedJob l = MustLease(*store, cpu, kT0);
  CHECK(l.job_key == "low");
  CHECK(l.epoch == 1);
  CHECK(l.attempt == 1);
  CHECK(l.deadline == kT0 + kTtl);
  auto none = store->Lease(cpu, kT0, kTtl);
  REQUIRE_OK(none);
  CHECK_FALSE(none->has_value());

  // A retried job waits for its not_before.
  REQUIRE_OK(store->Fail(l.job_id, l.epoch, "flaky", true, kT0));
  auto early = store->Lease(cpu, kT0 + absl::Milliseconds(500), kTtl);
  REQUIRE_OK(early);
  CHECK_FALSE(early->has_value());
  CHECK(MustLease(*store, cpu, kT0 + absl::Seconds(1)).job_key == "low");

  CHECK(store->Lease(999, kT0, kTtl).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("lease prefers held artifacts, then the sweep with the fewest leased jobs", "[pg]") {
  auto store = OpenFresh();
  NewJob b1 = Job("b1");
  b1.artifact_key = "model-b";
  REQUIRE_OK(store->SubmitSweep("r1", "s1", "{}", 0, {Job("a1"), Job("a2"), b1}, kT0));
  REQUIRE_OK(store->SubmitSweep("r2", "s2", "{}", 0, {Job("c1"), Job("c2")}, kT0));
  const int64_t holder = Worker(*store, "holder", {}, {"model-b"});
  const int64_t plain = Worker(*store, "plain");
  CHECK(MustLease(*store, holder, kT0).job_key == "b1");  // artifact affinity beats age
  // Sweep s1 now holds one leased job, s2 none: s2 goes next although a1 is older.
  CHECK(MustLease(*store, plain, kT0).job_key == "c1");
  CHECK(MustLease(*store, plain, kT0).job_key == "a1");  // tie (1 each): oldest
}

TEST_CASE(
    "a job needing k devices is leased only to a worker whose registered devices, memory and tp "
    "fit it",
    "[pg]") {
  auto store = OpenFresh();
  NewJob tp2 = Job("tp2", 10);  // the highest priority, but only a big worker fits it
  tp2.needs = {2, 40, 2};
  NewJob cpu = Job("cpu");
  cpu.needs = {1, 0, 1};
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {tp2, cpu}, kT0));
  const int64_t small = Worker(*store, "one-device", {1, 80, 1});
  const int64_t low_memory = Worker(*store, "low-memory", {2, 16, 2});
  const int64_t no_tp = Worker(*store, "no-tp", {2, 80, 1});
  const int64_t big = Worker(*store, "big", {4, 80, 4});
  CHECK(MustLease(*store, small, kT0).job_key == "cpu");
  for (int64_t w : {small, low_memory, no_tp}) {
    auto none = store->Lease(w, kT0, kTtl);
    REQUIRE_OK(none);
    CHECK_FALSE(none->has_value());
  }
  CHECK(MustLease(*store, big, kT0).job_key == "tp2");
}

TEST_CASE("artifact preference never places a job on a worker too small for it", "[pg]") {
  auto store = OpenFresh();
  NewJob b_big = Job("b-big");
  b_big.artifact_key = "model-b";
  b_big.needs = {4, 0, 4};
  REQUIRE_OK(store->SubmitSweep("r1", "s1", "{}", 0, {Job("a1"), Job("a2")}, kT0));
  REQUIRE_OK(store->SubmitSweep("r2", "s2", "{}", 0, {b_big}, kT0));
  // Holds model-b but has two devices: b-big does not fit, so the oldest job that does.
  const int64_t holder_small = Worker(*store, "holder-small", {2, 0, 2}, {"model-b"});
  CHECK(MustLease(*store, holder_small, kT0).job_key == "a1");
  // Holds model-b and fits: affinity beats the older a2.
  const int64_t holder_big = Worker(*store, "holder-big", {4, 0, 4}, {"model-b"});
  CHECK(MustLease(*store, holder_big, kT0).job_key == "b-big");
}

TEST_CASE(
    "worker registrations are persisted: a reopened store leases by them, re-registering "
    "replaces capabilities and labels and merges artifacts",
    "[pg]") {
  const std::string conninfo = testing::FreshDatabase();
  int64_t id = 0;
  {
    auto first = JobStore::Open(conninfo);
    REQUIRE_OK(first);
    WorkerInfo w;
    w.name = "gpu-0";
    w.capabilities = {2, 80, 2};
    w.labels_json = R"({"zone": "a"})";
    w.artifacts = {"m1"};
    auto registered = (*first)->RegisterWorker(w, kT0);
    REQUIRE_OK(registered);
    id = *registered;
    NewJob tp2 = Job("tp2");
    tp2.needs = {2, 80, 2};
    REQUIRE_OK((*first)->SubmitSweep("r", "s", "{}", 0, {tp2}, kT0));
  }
  // A new store (a restarted coordinator) knows the worker without a new registration.
  auto store = JobStore::Open(conninfo);
  REQUIRE_OK(store);
  auto info = (*store)->GetWorker(id);
  REQUIRE_OK(info);
  CHECK(info->id == id);
  CHECK(info->name == "gpu-0");
  CHECK(info->capabilities.devices == 2);
  CHECK(info->capabilities.memory_gb == 80);
  CHECK(info->capabilities.tp == 2);
  CHECK(info->labels_json.find("\"zone\"") != std::string::npos);
  CHECK(info->artifacts == std::vector<std::string>{"m1"});
  CHECK(info->last_heartbeat == kT0);
  CHECK(MustLease(**store, id, kT0 + absl::Seconds(1)).job_key == "tp2");

  WorkerInfo again;
  again.name = "gpu-0";
  again.capabilities = {1, 8, 1};
  again.labels_json = R"({"zone": "b"})";
  again.artifacts = {"m2"};
  auto same = (*store)->RegisterWorker(again, kT0 + absl::Seconds(2));
  REQUIRE_OK(same);
  CHECK(*same == id);
  info = (*store)->GetWorker(id);
  REQUIRE_OK(info);
  CHECK(info->capabilities.devices == 1);
  CHECK(info->capabilities.memory_gb == 8);
  CHECK(info->capabilities.tp == 1);
  CHECK(info->labels_json.find("\"b\"") != std::string::npos);
  CHECK(info->artifacts == std::vector<std::string>{"m1", "m2"});
  CHECK(info->last_heartbeat == kT0 + absl::Seconds(2));

  CHECK((*store)->GetWorker(424242).status().code() == absl::StatusCode::kNotFound);
  WorkerInfo bad;
  bad.name = "bad";
  bad.capabilities.devices = -1;
  auto rejected = (*store)->RegisterWorker(bad, kT0);
  CHECK(rejected.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(rejected.status().message().find("devices") != std::string::npos);
  bad.capabilities = {1, 0, 0};
  rejected = (*store)->RegisterWorker(bad, kT0);
  CHECK(rejected.status().message().find("tp") != std::string::npos);
}

TEST_CASE("64 threads leasing concurrently never get the same job", "[pg]") {
  JobStoreOptions options;
  options.max_connections = 32;
  auto store = OpenFresh(options);
  constexpr int kJobs = 640;
  std::vector<NewJob> jobs;
  for (int i = 0; i < kJobs; ++i) jobs.push_back(Job("k" + std::to_string(i), i % 3));
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, jobs, kT0));
  std::vector<int64_t> workers;
  for (int i = 0; i < 64; ++i) workers.push_back(Worker(*store, "w" + std::to_string(i)));

  std::mutex mu;
  std::vector<int64_t> leased;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&, t] {
      for (;;) {
        auto l = store->Lease(workers[t], kT0, kTtl);
        if (!l.ok()) {
          ++errors;
          return;
        }
        if (!l->has_value()) return;
        if (!store->Complete((*l)->job_id, (*l)->epoch, {}, kT0).ok()) ++errors;
        std::lock_guard<std::mutex> lock(mu);
        leased.push_back((*l)->job_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  CHECK(leased.size() == kJobs);
  CHECK(std::set<int64_t>(leased.begin(), leased.end()).size() == kJobs);
  auto counts = store->CountJobsByState();
  REQUIRE_OK(counts);
  CHECK(counts->at(JobState::kSucceeded) == kJobs);
}

// The same sweeps, workers and history in a fresh database, from `seed`: sweeps of jobs with
// random priorities, artifacts and needs, some already leased (so sweeps hold different numbers
// of jobs) and one retried job not yet due; workers with random capabilities and artifacts.
struct LeaseWorld {
  std::unique_ptr<JobStore> store;
  std::vector<int64_t> workers;
};
LeaseWorld BuildLeaseWorld(uint32_t seed) {
  LeaseWorld world{OpenFresh(), {}};
  JobStore& store = *world.store;
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  const std::vector<Capabilities> shapes = {{0, 0, 1}, {1, 8, 1}, {2, 40, 2}, {4, 80, 4}};
  // Shaped like JobSpec::ArtifactKey (fields separated by ';').
  const std::vector<std::string> artifacts = {
      "", "artifact/v1;model=/m/a;method=rtn;wbits=4", "artifact/v1;model=/m/a;method=gptq;wbits=4",
      "artifact/v1;model=/m/b;method=rtn;wbits=4", "artifact/v1;model=/m/b;method=awq;wbits=3"};
  for (int s = 0; s < 3; ++s) {
    std::vector<NewJob> jobs;
    for (int j = 0; j < 20; ++j) {
      NewJob job = Job("s" + std::to_string(s) + "-j" + std::to_string(j), pick(3));
      job.artifact_key = artifacts[pick(5)];
      job.needs = shapes[pick(3)];
      jobs.push_back(job);
    }
    REQUIRE_OK(store.SubmitSweep("r" + std::to_string(s), "s", "{}", 0, jobs, kT0));
  }
  for (int w = 0; w < 8; ++w) {
    std::vector<std::string> held;
    for (int a = 1; a < 5; ++a) {
      if (pick(3) == 0) held.push_back(artifacts[a]);
    }
    world.workers.push_back(
        Worker(store, "w" + std::to_string(w), shapes[1 + pick(3)], std::move(held)));
  }
  // History: a few leases (uneven held counts per sweep) and a retry that is not yet due.
  for (int k = 0; k < 4; ++k) MustLease(store, world.workers[static_cast<size_t>(k)], kT0);
  LeasedJob retried = MustLease(store, world.workers[4], kT0);
  REQUIRE_OK(store.Fail(retried.job_id, retried.epoch, "flaky", true, kT0));
  return world;
}

TEST_CASE("LeaseMany gives each worker what consecutive Lease calls would", "[pg]") {
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    INFO("seed " << seed);
    LeaseWorld batch = BuildLeaseWorld(seed);
    LeaseWorld one = BuildLeaseWorld(seed);
    REQUIRE(batch.workers == one.workers);
    // Every worker, some twice, an unknown worker, a bad ttl, and later clocks for some (the
    // retried job becomes due for those).
    std::vector<LeaseRequest> requests;
    std::mt19937 rng(seed * 7919u);
    for (int k = 0; k < 24; ++k) {
      LeaseRequest q;
      q.worker_id = batch.workers[rng() % batch.workers.size()];
      q.now = kT0 + absl::Seconds(static_cast<int>(rng() % 3));
      q.ttl = kTtl;
      requests.push_back(q);
    }
    requests[5].worker_id = 424242;
    requests[9].ttl = absl::ZeroDuration();
    const auto got = batch.store->LeaseMany(requests);
    REQUIRE(got.size() == requests.size());
    int leased = 0;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      INFO("request " << i << " (worker " << requests[i].worker_id << ")");
      const auto want = one.store->Lease(requests[i].worker_id, requests[i].now, requests[i].ttl);
      REQUIRE(got[i].status().code() == want.status().code());
      if (!want.ok()) continue;
      REQUIRE(got[i]->has_value() == want->has_value());
      if (!want->has_value()) continue;
      ++leased;
      const LeasedJob& g = **got[i];
      const LeasedJob& w = **want;
      CHECK(g.job_key == w.job_key);
      CHECK(g.epoch == w.epoch);
      CHECK(g.attempt == w.attempt);
      CHECK(g.deadline == w.deadline);
      CHECK(g.artifact_key == w.artifact_key);
      CHECK(g.spec_json == w.spec_json);
      auto ge = batch.store->Events(g.job_id);
      auto we = one.store->Events(w.job_id);
      REQUIRE_OK(ge);
      REQUIRE_OK(we);
      REQUIRE(ge->size() == we->size());
      CHECK(ge->back().event == JobEvent::kLease);
      CHECK(ge->back().at == we->back().at);
      CHECK(ge->back().worker_id == we->back().worker_id);
      CHECK(ge->back().reason == we->back().reason);
    }
    CHECK(leased > 8);  // the comparison covered real choices, not only empty answers
    // Both record every registered requester as alive at its (last) clock.
    for (int64_t w : batch.workers) {
      auto a = batch.store->GetWorker(w);
      auto b = one.store->GetWorker(w);
      REQUIRE_OK(a);
      REQUIRE_OK(b);
      CHECK(a->last_heartbeat == b->last_heartbeat);
    }
    auto ca = batch.store->CountJobsByState();
    auto cb = one.store->CountJobsByState();
    REQUIRE_OK(ca);
    REQUIRE_OK(cb);
    CHECK(*ca == *cb);
  }
}

}  // namespace
}  // namespace bitsweep::store::job_store_test
