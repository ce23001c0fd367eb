// Transitions after a lease (store/transitions.cc, store/cancel.cc): fencing by epoch, retries
// with backoff, cancellation, and sweeps that ask again for canceled or failed jobs.
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

TEST_CASE("a fenced worker cannot heartbeat, complete or fail after its lease expired", "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {Job("k")}, kT0));
  const int64_t w1 = Worker(*store, "w1");
  const int64_t w2 = Worker(*store, "w2");
  LeasedJob old = MustLease(*store, w1, kT0);
  auto hb = store->Heartbeat(old.job_id, old.epoch, kT0 + absl::Seconds(10), kTtl);
  REQUIRE_OK(hb);
  CHECK_FALSE(hb->cancel_requested);
  CHECK(store->GetWorker(w1)->last_heartbeat == kT0 + absl::Seconds(10));  // the holder is alive
  // Renewed to t0+40s: nothing expires at t0+35s.
  auto none = store->ExpireLeases(kT0 + absl::Seconds(35));
  REQUIRE_OK(none);
  CHECK(*none == 0);
  auto expired = store->ExpireLeases(kT0 + absl::Seconds(41));
  REQUIRE_OK(expired);
  CHECK(*expired == 1);
  CHECK(StateOf(*store, old.job_id) == JobState::kPending);
  // Expired but not yet re-leased: the old epoch is already fenced.
  CHECK(store->Heartbeat(old.job_id, old.epoch, kT0 + absl::Seconds(42), kTtl).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  LeasedJob fresh = MustLease(*store, w2, kT0 + absl::Minutes(5));
  CHECK(fresh.epoch == old.epoch + 1);
  CHECK(fresh.attempt == 2);
  const absl::Time later = kT0 + absl::Minutes(6);
  auto stale_hb = store->Heartbeat(old.job_id, old.epoch, later, kTtl);
  CHECK(stale_hb.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(stale_hb.status().message().find("epoch") != std::string::npos);
  CHECK(store->Complete(old.job_id, old.epoch, {}, later).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(store->Fail(old.job_id, old.epoch, "late", true, later).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(store->Complete(fresh.job_id, fresh.epoch, {}, later).ok());
  CHECK(StateOf(*store, fresh.job_id) == JobState::kSucceeded);
  CHECK(store->Heartbeat(99999, 1, later, kTtl).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("retryable failures back off exponentially, then the job FAILS at max_attempts", "[pg]") {
  JobStoreOptions options;
  options.backoff_base = absl::Seconds(2);
  auto store = OpenFresh(options);
  NewJob j = Job("k");
  j.max_attempts = 3;
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {j}, kT0));
  const int64_t w = Worker(*store, "w");
  absl::Time now = kT0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    LeasedJob l = MustLease(*store, w, now);
    CHECK(l.attempt == attempt);
    auto retried = store->Fail(l.job_id, l.epoch, "oom", true, now);
    REQUIRE_OK(retried);
    CHECK(*retried == JobState::kPending);
    // A replay of the same Fail is harmless.
    REQUIRE_OK(store->Fail(l.job_id, l.epoch, "oom", true, now));
    auto job = store->GetJob(l.job_id);
    REQUIRE_OK(job);
    CHECK(job->state == JobState::kPending);
    CHECK(job->not_before == now + absl::Seconds(2) * (1 << (attempt - 1)));
    CHECK(job->last_error == "oom");
    now = job->not_before;
  }
  LeasedJob last = MustLease(*store, w, now);
  CHECK(last.attempt == 3);
  auto exhausted = store->Fail(last.job_id, last.epoch, "oom again", true, now);
  REQUIRE_OK(exhausted);
  CHECK(*exhausted == JobState::kFailed);
  CHECK(StateOf(*store, last.job_id) == JobState::kFailed);

  // A fatal failure is final at once.
  REQUIRE_OK(store->SubmitSweep("r2", "s", "{}", 0, {Job("fatal")}, kT0));
  LeasedJob f = MustLease(*store, w, now);
  REQUIRE_OK(store->Fail(f.job_id, f.epoch, "bad spec", false, now));
  CHECK(StateOf(*store, f.job_id) == JobState::kFailed);
}

TEST_CASE("cancel of a pending job is immediate, of a leased job requested and honoured", "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", "{}", 0, {Job("a", 1), Job("b")}, kT0);
  REQUIRE_OK(sweep);
  const int64_t w = Worker(*store, "w");
  LeasedJob l = MustLease(*store, w, kT0);  // "a"
  auto changed = store->CancelSweep(*sweep, "user", kT0);
  REQUIRE_OK(changed);
  CHECK(*changed == 2);
  auto jobs = store->ListJobs(*sweep);
  REQUIRE_OK(jobs);
  CHECK(jobs->at(0).state == JobState::kCancelRequested);
  CHECK(jobs->at(1).state == JobState::kCanceled);
  auto hb = store->Heartbeat(l.job_id, l.epoch, kT0, kTtl);
  REQUIRE_OK(hb);
  CHECK(hb->cancel_requested);
  JobResultRow r;
  r.metric = "acc";
  auto completed = store->Complete(l.job_id, l.epoch, {r}, kT0);
  REQUIRE_OK(completed);
  CHECK(*completed == JobState::kCanceled);
  CHECK(StateOf(*store, l.job_id) == JobState::kCanceled);
  ResultFilter all;
  CHECK(store->Results(all)->empty());  // a canceled job's results are discarded
  auto again = store->CancelSweep(*sweep, "user", kT0);
  REQUIRE_OK(again);
  CHECK(*again == 0);
  auto info = store->GetSweep(*sweep);
  REQUIRE_OK(info);
  CHECK(info->state == "CANCELED");
  CHECK(info->jobs_by_state.at(JobState::kCanceled) == 2);

  // CancelJob: pending -> canceled, finished -> FAILED_PRECONDITION, twice -> OK.
  REQUIRE_OK(store->SubmitSweep("r2", "s2", "{}", 0, {Job("c"), Job("d")}, kT0));
  LeasedJob c = MustLease(*store, w, kT0);
  REQUIRE_OK(store->Complete(c.job_id, c.epoch, {}, kT0));
  CHECK(store->CancelJob(c.job_id, "late", kT0).code() == absl::StatusCode::kFailedPrecondition);
  auto d_jobs = store->ListJobs(*store->SubmitSweep("r2", "s2", "{}", 0, {}, kT0));
  REQUIRE_OK(d_jobs);
  const int64_t d = d_jobs->at(1).id;
  REQUIRE_OK(store->CancelJob(d, "user", kT0));
  REQUIRE_OK(store->CancelJob(d, "user", kT0));
  CHECK(StateOf(*store, d) == JobState::kCanceled);
  CHECK(store->CancelSweep(424242, "x", kT0).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("canceling one sweep keeps jobs another active sweep still needs", "[pg]") {
  auto store = OpenFresh();
  auto a = store->SubmitSweep("ra", "a", "{}", 0, {Job("shared"), Job("only-a")}, kT0);
  auto b = store->SubmitSweep("rb", "b", "{}", 0, {Job("shared")}, kT0);
  REQUIRE_OK(a);
  REQUIRE_OK(b);
  auto changed = store->CancelSweep(*a, "user", kT0);
  REQUIRE_OK(changed);
  CHECK(*changed == 1);
  auto jobs = store->ListJobs(*b);
  REQUIRE_OK(jobs);
  CHECK(jobs->at(0).state == JobState::kPending);
}

TEST_CASE("a new sweep asking for jobs of a canceled sweep runs them again", "[pg]") {
  auto store = OpenFresh();
  auto a = store->SubmitSweep("ra", "a", "{}", 0, {Job("k")}, kT0);
  REQUIRE_OK(a);
  const int64_t w = Worker(*store, "w");
  LeasedJob first = MustLease(*store, w, kT0);
  REQUIRE_OK(store->Fail(first.job_id, first.epoch, "flaky", true, kT0));
  REQUIRE_OK(store->CancelSweep(*a, "user", kT0));
  CHECK(StateOf(*store, first.job_id) == JobState::kCanceled);

  auto b = store->SubmitSweep("rb", "b", "{}", 0, {Job("k")}, kT0 + absl::Seconds(5));
  REQUIRE_OK(b);
  auto job = store->GetJob(first.job_id);
  REQUIRE_OK(job);
  CHECK(job->state == JobState::kPending);
  CHECK(job->sweep_id == *b);
  CHECK(job->attempt == 0);
  CHECK(job->lease_epoch == first.epoch);  // fencing tokens never go back
  LeasedJob again = MustLease(*store, w, kT0 + absl::Seconds(5));
  CHECK(again.job_id == first.job_id);
  CHECK(again.epoch == first.epoch + 1);
  CHECK(again.attempt == 1);
  auto events = store->Events(first.job_id);
  REQUIRE_OK(events);
  REQUIRE(events->size() == 6);  // SUBMIT LEASE RETRY CANCEL RESUBMIT LEASE
  CHECK(events->at(4).event == JobEvent::kResubmit);
  CHECK(events->at(4).from == JobState::kCanceled);
  CHECK(events->at(4).to == JobState::kPending);
}

TEST_CASE(
    "a new sweep asking for a failed job retries it with fresh attempts, a replay of the same "
    "sweep does not, and a succeeded job is answered from its result",
    "[pg]") {
  auto store = OpenFresh();
  NewJob once = Job("k");
  once.max_attempts = 1;
  auto a = store->SubmitSweep("ra", "a", "{}", 0, {once}, kT0);
  REQUIRE_OK(a);
  const int64_t w = Worker(*store, "w");
  LeasedJob first = MustLease(*store, w, kT0);
  REQUIRE_OK(store->Fail(first.job_id, first.epoch, "out of memory", true, kT0));
  CHECK(StateOf(*store, first.job_id) == JobState::kFailed);  // attempts exhausted

  // The same request id again: the original sweep, nothing retried, no event.
  auto replay = store->SubmitSweep("ra", "a", "{}", 0, {once}, kT0 + absl::Seconds(1));
  REQUIRE_OK(replay);
  CHECK(*replay == *a);
  CHECK(StateOf(*store, first.job_id) == JobState::kFailed);
  auto none = store->Lease(w, kT0 + absl::Minutes(1), kTtl);
  REQUIRE_OK(none);
  CHECK_FALSE(none->has_value());
  REQUIRE(store->Events(first.job_id)->size() == 3);  // SUBMIT LEASE FAIL

  // A new sweep: the job runs again from attempt 1 under a higher epoch.
  const absl::Time t1 = kT0 + absl::Minutes(2);
  auto b = store->SubmitSweep("rb", "b", "{}", 0, {once}, t1);
  REQUIRE_OK(b);
  auto job = store->GetJob(first.job_id);
  REQUIRE_OK(job);
  CHECK(job->state == JobState::kPending);
  CHECK(job->attempt == 0);
  CHECK(job->sweep_id == *b);
  CHECK(job->last_error.empty());
  CHECK(job->not_before == t1);
  auto events = store->Events(first.job_id);
  REQUIRE_OK(events);
  REQUIRE(events->size() == 4);
  const JobEventRow& resubmit = events->back();
  CHECK(resubmit.event == JobEvent::kResubmit);
  CHECK(resubmit.from == JobState::kFailed);
  CHECK(resubmit.to == JobState::kPending);
  CHECK(resubmit.reason ==
        "resubmitted by sweep " + std::to_string(*b) + " (was FAILED: out of memory)");
  LeasedJob again = MustLease(*store, w, t1);
  CHECK(again.job_id == first.job_id);
  CHECK(again.attempt == 1);
  CHECK(again.epoch == first.epoch + 1);
  // The old attempt stays fenced.
  CHECK(store->Complete(first.job_id, first.epoch, {}, t1).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  JobResultRow r;
  r.metric = "ppl";
  r.value = 7.25;
  REQUIRE_OK(store->Complete(again.job_id, again.epoch, {r}, t1));
  // Both sweeps see the one result.
  for (int64_t sweep : {*a, *b}) {
    ResultFilter f;
    f.sweep_id = sweep;
    auto results = store->Results(f);
    REQUIRE_OK(results);
    REQUIRE(results->size() == 1);
    CHECK(results->at(0).value == 7.25);
  }

  // A third sweep asking for the now SUCCEEDED job: no new work, no new event.
  auto c = store->SubmitSweep("rc", "c", "{}", 0, {once}, t1 + absl::Minutes(1));
  REQUIRE_OK(c);
  CHECK(StateOf(*store, first.job_id) == JobState::kSucceeded);
  CHECK(store->Events(first.job_id)->size() == 6);  // ... RESUBMIT LEASE COMPLETE
  auto idle = store->Lease(w, t1 + absl::Minutes(1), kTtl);
  REQUIRE_OK(idle);
  CHECK_FALSE(idle->has_value());
  ResultFilter fc;
  fc.sweep_id = *c;
  CHECK(store->Results(fc)->size() == 1);
}

}  // namespace
}  // namespace bitsweep::store::job_store_test
