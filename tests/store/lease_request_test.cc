// Lease is idempotent by the worker's request id (JobStore::Lease), against a private PostgreSQL.
#include <catch2/catch.hpp>
#include <set>
#include <thread>
#include <vector>

#include "store/job_store.h"
#include "tests/testing/local_pg.h"

namespace bitsweep::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const absl::Duration kTtl = absl::Seconds(30);

std::unique_ptr<JobStore> OpenWithJobs(const std::vector<std::string>& keys) {
  auto store = JobStore::Open(testing::FreshDatabase());
  if (!store.ok()) FAIL("JobStore::Open: " << store.status().ToString());
  std::vector<NewJob> jobs;
  for (const std::string& key : keys) {
    NewJob j;
    j.job_key = key;
    j.spec_json = "{}";
    jobs.push_back(j);
  }
  REQUIRE((*store)->SubmitSweep("r", "s", "{}", 0, jobs, kT0).ok());
  return std::move(store).value();
}

int64_t Worker(JobStore& store, const std::string& name) {
  WorkerInfo w;
  w.name = name;
  auto id = store.RegisterWorker(w, kT0);
  REQUIRE(id.ok());
  return *id;
}

LeasedJob MustLease(JobStore& store, int64_t worker, absl::Time now, const std::string& id) {
  auto l = store.Lease(worker, now, kTtl, id);
  INFO(l.status().ToString());
  REQUIRE(l.ok());
  REQUIRE(l->has_value());
  return **l;
}

TEST_CASE("a Lease repeated with its request id answers the same job, epoch and attempt while "
          "the job is held, and renews its lease",
          "[pg]") {
  auto store = OpenWithJobs({"a", "b", "c"});
  const int64_t w = Worker(*store, "w");
  const LeasedJob first = MustLease(*store, w, kT0, "req-1");
  const LeasedJob again = MustLease(*store, w, kT0 + absl::Seconds(5), "req-1");
  CHECK(again.job_id == first.job_id);
  CHECK(again.epoch == first.epoch);
  CHECK(again.attempt == 1);
  CHECK(again.job_key == first.job_key);
  CHECK(again.spec_json == first.spec_json);
  auto job = store->GetJob(first.job_id);
  REQUIRE(job.ok());
  CHECK(job->attempt == 1);
  CHECK(job->lease_epoch == first.epoch);
  CHECK(job->lease_deadline == kT0 + absl::Seconds(5) + kTtl);
  auto events = store->Events(first.job_id);
  REQUIRE(events.ok());
  CHECK(std::count_if(events->begin(), events->end(), [](const JobEventRow& e) {
          return e.event == JobEvent::kLease;
        }) == 1);

  // A new request id is a new lease; the same id from another worker is that worker's own.
  const LeasedJob second = MustLease(*store, w, kT0, "req-2");
  CHECK(second.job_id != first.job_id);
  const LeasedJob other = MustLease(*store, Worker(*store, "v"), kT0, "req-1");
  CHECK(other.job_id != first.job_id);
  CHECK(other.job_id != second.job_id);

  // Once the job is no longer held, its request id leases anew (here: nothing is left).
  REQUIRE(store->Complete(first.job_id, first.epoch, {}, kT0).ok());
  auto after = store->Lease(w, kT0, kTtl, "req-1");
  REQUIRE(after.ok());
  CHECK_FALSE(after->has_value());
}

TEST_CASE("a Lease repeated after a cancel request still answers the held job", "[pg]") {
  auto store = OpenWithJobs({"a", "b"});
  const int64_t w = Worker(*store, "w");
  const LeasedJob first = MustLease(*store, w, kT0, "req-1");
  REQUIRE(store->CancelJob(first.job_id, "user", kT0).ok());
  const LeasedJob again = MustLease(*store, w, kT0, "req-1");
  CHECK(again.job_id == first.job_id);
  CHECK(again.epoch == first.epoch);
}

TEST_CASE("concurrent Lease calls with one request id lease one job between them", "[pg]") {
  auto store = OpenWithJobs({"a", "b", "c", "d", "e", "f", "g", "h"});
  const int64_t w = Worker(*store, "w");
  std::vector<std::thread> threads;
  std::vector<int64_t> got(8, 0);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      auto l = store->Lease(w, kT0, kTtl, "same");
      if (l.ok() && l->has_value()) got[i] = (*l)->job_id;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(std::set<int64_t>(got.begin(), got.end()).size() == 1);
  CHECK(got[0] != 0);
  auto counts = store->CountJobsByState();
  REQUIRE(counts.ok());
  CHECK(counts->at(JobState::kLeased) == 1);
  CHECK(counts->at(JobState::kPending) == 7);
}

TEST_CASE("Lease without a request id leases anew every time, as before", "[pg]") {
  auto store = OpenWithJobs({"a", "b"});
  const int64_t w = Worker(*store, "w");
  const LeasedJob a = MustLease(*store, w, kT0, "");
  const LeasedJob b = MustLease(*store, w, kT0, "");
  CHECK(a.job_id != b.job_id);
}

}  // namespace
}  // namespace bitsweep::store
