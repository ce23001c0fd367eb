// Worker sessions (store/schema/005_worker_session.sql): job calls only from the session that
// holds the lease, and a name refused while another live session holds it.
#include <catch2/catch.hpp>

#include "store/job_store.h"
#include "tests/testing/local_pg.h"

namespace bitsweep::store {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const absl::Duration kTtl = absl::Seconds(30);

std::unique_ptr<JobStore> OpenWithJob() {
  auto store = JobStore::Open(testing::FreshDatabase());
  if (!store.ok()) FAIL("JobStore::Open: " << store.status().ToString());
  NewJob j;
  j.job_key = "a";
  j.spec_json = "{}";
  REQUIRE((*store)->SubmitSweep("r", "s", "{}", 0, {j}, kT0).ok());
  return std::move(store).value();
}

StatusOr<int64_t> Register(JobStore& store, const std::string& name, const std::string& session,
                           absl::Time now) {
  WorkerInfo w;
  w.name = name;
  w.session = session;
  return store.RegisterWorker(w, now, kTtl);
}

const std::string kSession = "0123456789abcdef0123456789abcdef";
const std::string kImpostor = "ffffffffffffffffffffffffffffffff";

TEST_CASE("a leased job's Heartbeat, Complete and Fail are refused to every session but the "
          "holder's, and the holder's Complete lands with its own metrics",
          "[pg]") {
  auto store = OpenWithJob();
  auto w = Register(*store, "w", kSession, kT0);
  REQUIRE(w.ok());
  auto leased = store->Lease(*w, kT0, kTtl, "", kSession);
  REQUIRE(leased.ok());
  REQUIRE(leased->has_value());
  const LeasedJob l = **leased;

  // Another holder of the worker token knows the job id and the epoch, not the session.
  JobResultRow forged;
  forged.metric = "ppl";
  forged.value = 1;
  const Status complete = store->Complete(l.job_id, l.epoch, {forged}, kT0, kImpostor).status();
  CHECK(complete.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(complete.message() == "Complete: job 1 is held by another worker session");
  CHECK(store->Complete(l.job_id, l.epoch, {forged}, kT0, "").status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(store->Heartbeat(l.job_id, l.epoch, kT0, kTtl, kImpostor).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(store->Fail(l.job_id, l.epoch, "x", false, kT0, kImpostor).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  auto job = store->GetJob(l.job_id);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kLeased);

  REQUIRE(store->Heartbeat(l.job_id, l.epoch, kT0, kTtl, kSession).ok());
  JobResultRow real;
  real.metric = "ppl";
  real.value = 12.5;
  auto done = store->Complete(l.job_id, l.epoch, {real}, kT0, kSession);
  REQUIRE(done.ok());
  CHECK(*done == JobState::kSucceeded);
  auto results = store->Results({});
  REQUIRE(results.ok());
  REQUIRE(results->size() == 1);
  CHECK(results->front().value == 12.5);
}

TEST_CASE("a Register under a name that another live session holds is refused, naming the "
          "holder, the same session or a stale one takes the name",
          "[pg]") {
  auto store = OpenWithJob();
  auto first = Register(*store, "w", kSession, kT0);
  REQUIRE(first.ok());
  const Status refused = Register(*store, "w", kImpostor, kT0 + absl::Seconds(10)).status();
  CHECK(refused.code() == absl::StatusCode::kAlreadyExists);
  CHECK(refused.message() ==
        "Register: the worker name 'w' is held by a live worker (id " + std::to_string(*first) +
            ", labels {}, last seen 10s ago): give this worker another --name, or stop that one");
  // Without a session no one takes a name a session holds.
  CHECK(Register(*store, "w", "", kT0 + absl::Seconds(10)).status().code() ==
        absl::StatusCode::kAlreadyExists);
  // The holder itself, restarted with its state directory, resumes.
  auto resumed = Register(*store, "w", kSession, kT0 + absl::Seconds(10));
  REQUIRE(resumed.ok());
  CHECK(*resumed == *first);
  // A holder silent for longer than the lease TTL has let the name go.
  auto taken = Register(*store, "w", kImpostor, kT0 + absl::Seconds(10) + kTtl + absl::Seconds(1));
  REQUIRE(taken.ok());
  CHECK(*taken == *first);
  // Workers without sessions (older workers) register under their names as before.
  REQUIRE(Register(*store, "old", "", kT0).ok());
  REQUIRE(Register(*store, "old", "", kT0).ok());
}

TEST_CASE("a Lease is refused to every session but the one the worker registered under, alone, "
          "in a batch and as a replay, and leaves the job pending",
          "[pg]") {
  auto store = OpenWithJob();
  auto w = Register(*store, "w", kSession, kT0);
  REQUIRE(w.ok());
  const std::string wrong =
      "Lease: worker " + std::to_string(*w) + " is registered under another session";
  for (const std::string& session : {kImpostor, std::string()}) {
    const Status one = store->Lease(*w, kT0, kTtl, "", session).status();
    CHECK(one.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(one.message() == wrong);
  }
  const auto batch = store->LeaseMany({{*w, kT0, kTtl, "", kImpostor}, {*w, kT0, kTtl, "b", ""}});
  REQUIRE(batch.size() == 2);
  for (const auto& r : batch) {
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(r.status().message() == wrong);
  }
  auto job = store->GetJob(1);
  REQUIRE(job.ok());
  CHECK(job->state == JobState::kPending);
  CHECK(store->Lease(999, kT0, kTtl, "", kSession).status().code() ==
        absl::StatusCode::kNotFound);

  auto held = store->Lease(*w, kT0, kTtl, "req", kSession);
  REQUIRE(held.ok());
  REQUIRE(held->has_value());
  // Knowing the worker id and the request id is not enough to have the lease answered again.
  CHECK(store->Lease(*w, kT0, kTtl, "req", kImpostor).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  auto replay = store->Lease(*w, kT0, kTtl, "req", kSession);
  REQUIRE(replay.ok());
  REQUIRE(replay->has_value());
  CHECK((*replay)->job_id == (*held)->job_id);
  CHECK((*replay)->epoch == (*held)->epoch);
}

}  // namespace
}  // namespace bitsweep::store
