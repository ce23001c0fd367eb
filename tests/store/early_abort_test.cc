// Early abort in the store (store/early_abort.cc): a sweep's rule skips the pending jobs of an
// artifact whose perplexity exceeds ratio x its baseline's, releases the holds of the others,
// whichever result arrives first, and a new sweep with a looser rule revives what it skipped.
#include <catch2/catch.hpp>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <string>

#include "common/diverged.h"
#include "store/job_store.h"
#include "tests/store/job_store_testing.h"
#include "tests/testing/local_pg.h"

namespace bitsweep::store::job_store_test {
namespace {

constexpr char kRule[] =
    R"({"early_abort": {"ppl_ratio": 3, "on": "wikitext2", "hold_seconds": 60}})";
const absl::Duration kHold = absl::Seconds(60);

// A job of artifact `artifact` on `task`; quantized ones name their baseline "fp|<task>".
NewJob TaskJob(const std::string& artifact, const std::string& task, bool held = false) {
  NewJob j;
  j.job_key = artifact + "|" + task;
  j.artifact_key = artifact;
  j.spec_json = R"({"eval": {"task": ")" + task + R"("}})";
  if (artifact != "fp") j.baseline_key = "fp|" + task;
  if (held) j.hold = kHold;
  return j;
}

// The FP baseline and two quantized artifacts, q1 and q2, on wikitext2 and piqa; the quantized
// piqa jobs are held, as the coordinator holds them under the rule.
std::vector<NewJob> Grid() {
  return {TaskJob("fp", "wikitext2"),        TaskJob("fp", "piqa"),
          TaskJob("q1", "wikitext2"),        TaskJob("q1", "piqa", /*held=*/true),
          TaskJob("q2", "wikitext2"),        TaskJob("q2", "piqa", /*held=*/true)};
}

std::vector<JobResultRow> Ppl(double v) {
  JobResultRow r;
  r.metric = "ppl";
  r.value = v;
  return {r};
}
std::vector<JobResultRow> Acc(double v) {
  JobResultRow r;
  r.metric = "acc";
  r.value = v;
  return {r};
}

// Leases every job that can be leased at `now`, by job key.
std::map<std::string, LeasedJob> LeaseAll(JobStore& store, int64_t worker, absl::Time now) {
  std::map<std::string, LeasedJob> out;
  while (true) {
    auto l = store.Lease(worker, now, absl::Hours(1));
    REQUIRE_OK(l);
    if (!l->has_value()) return out;
    out[(*l)->job_key] = **l;
  }
}

// Completes the leased job `key` with `results` at `now`.
void Finish(JobStore& store, std::map<std::string, LeasedJob>& leased, const std::string& key,
            const std::vector<JobResultRow>& results, absl::Time now) {
  REQUIRE_OK(store.Complete(leased.at(key).job_id, leased.at(key).epoch, results, now));
}

JobInfo Get(JobStore& store, const std::map<std::string, int64_t>& ids, const std::string& key) {
  auto j = store.GetJob(ids.at(key));
  REQUIRE_OK(j);
  return *j;
}

std::map<std::string, int64_t> Ids(JobStore& store, int64_t sweep) {
  auto jobs = store.ListJobs(sweep);
  REQUIRE_OK(jobs);
  std::map<std::string, int64_t> ids;
  for (const JobInfo& j : *jobs) ids[j.job_key] = j.id;
  return ids;
}

}  // namespace

TEST_CASE("an artifact whose ppl exceeds ratio x FP has its other jobs skipped, one under it "
          "has them released",
          "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  // The held piqa jobs wait: only the four others are leased.
  auto leased = LeaseAll(*store, w, kT0);
  REQUIRE(leased.size() == 4);
  CHECK(leased.count("q1|piqa") == 0);
  CHECK(leased.count("q2|piqa") == 0);
  const absl::Time t = kT0 + absl::Seconds(10);
  Finish(*store, leased, "fp|piqa", Acc(0.7), t);
  Finish(*store, leased, "fp|wikitext2", Ppl(6.3), t);
  Finish(*store, leased, "q1|wikitext2", Ppl(965.3), t);
  const JobInfo skipped = Get(*store, ids, "q1|piqa");
  CHECK(skipped.state == JobState::kSkipped);
  CHECK(skipped.last_error ==
        "early abort: wikitext2 ppl 965.3 > 3 x FP 6.3 = 18.9 "
        "(early_abort: {ppl_ratio: 3, on: wikitext2, hold_seconds: 60})");
  // q2 is still held until its ppl arrives; under the ratio it releases q2|piqa at once.
  CHECK(Get(*store, ids, "q2|piqa").not_before == kT0 + kHold);
  Finish(*store, leased, "q2|wikitext2", Ppl(7.0), t);
  const JobInfo released = Get(*store, ids, "q2|piqa");
  CHECK(released.state == JobState::kPending);
  CHECK(released.not_before == t);
  CHECK(MustLease(*store, w, t).job_key == "q2|piqa");
  // The saving: one job, estimated at what fp|piqa ran for (10 s).
  auto info = store->GetSweep(*sweep);
  REQUIRE_OK(info);
  CHECK(info->jobs_by_state.at(JobState::kSkipped) == 1);
  CHECK(info->saved_seconds == Approx(10));
  auto totals = store->EarlyAbortTotals();
  REQUIRE_OK(totals);
  CHECK(totals->skipped_jobs == 1);
  CHECK(totals->saved_seconds == Approx(10));
  // The skipped job is in the results, with its reason.
  auto page = store->ResultsPage(*sweep, 0, 100);
  REQUIRE_OK(page);
  bool found = false;
  for (const JobResults& r : *page) {
    if (r.job_key != "q1|piqa") continue;
    found = true;
    CHECK(r.state == JobState::kSkipped);
    CHECK(r.metrics.empty());
    CHECK(r.last_error == skipped.last_error);
  }
  CHECK(found);
  // Its history says so.
  auto events = store->Events(ids.at("q1|piqa"));
  REQUIRE_OK(events);
  CHECK(events->back().event == JobEvent::kSkip);
  CHECK(events->back().to == JobState::kSkipped);
}

TEST_CASE("a baseline arriving after the quantized ppl decides its artifacts", "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  auto leased = LeaseAll(*store, w, kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  Finish(*store, leased, "q1|wikitext2", Ppl(965.3), t);
  Finish(*store, leased, "q2|wikitext2", Ppl(7.0), t);
  // No baseline yet: both stay held.
  CHECK(Get(*store, ids, "q1|piqa").state == JobState::kPending);
  CHECK(Get(*store, ids, "q2|piqa").not_before == kT0 + kHold);
  Finish(*store, leased, "fp|wikitext2", Ppl(6.3), t + absl::Seconds(1));
  CHECK(Get(*store, ids, "q1|piqa").state == JobState::kSkipped);
  CHECK(Get(*store, ids, "q2|piqa").state == JobState::kPending);
  CHECK(Get(*store, ids, "q2|piqa").not_before == t + absl::Seconds(1));
}

TEST_CASE("a diverged ppl skips the artifact's other jobs before its baseline is known",
          "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  auto leased = LeaseAll(*store, w, kT0);
  auto failed = store->Fail(leased["q1|wikitext2"].job_id, leased["q1|wikitext2"].epoch,
                            DivergedReason("ppl", std::numeric_limits<double>::infinity()),
                            /*retryable=*/false, kT0 + absl::Seconds(3));
  REQUIRE_OK(failed);
  CHECK(*failed == JobState::kFailed);
  const JobInfo skipped = Get(*store, ids, "q1|piqa");
  CHECK(skipped.state == JobState::kSkipped);
  CHECK_THAT(skipped.last_error, Catch::StartsWith("early abort: wikitext2 ppl is inf (diverged)"));
  // A failure that is not a divergence decides nothing but ends the wait.
  REQUIRE_OK(store->Fail(leased["q2|wikitext2"].job_id, leased["q2|wikitext2"].epoch, "oom",
                         /*retryable=*/false, kT0 + absl::Seconds(4)));
  CHECK(Get(*store, ids, "q2|piqa").state == JobState::kPending);
  CHECK(Get(*store, ids, "q2|piqa").not_before == kT0 + absl::Seconds(4));
}

TEST_CASE("a new sweep with a looser rule or none revives skipped jobs, the same rule skips "
          "them again",
          "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  auto leased = LeaseAll(*store, w, kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  Finish(*store, leased, "fp|wikitext2", Ppl(6.3), t);
  Finish(*store, leased, "q1|wikitext2", Ppl(965.3), t);
  REQUIRE(Get(*store, ids, "q1|piqa").state == JobState::kSkipped);

  // The same rule again: revived, then skipped again at once.
  SubmitCounts same;
  REQUIRE_OK(store->SubmitSweep("r2", "s", kRule, 0, Grid(), t, &same));
  CHECK(same.resubmitted == 1);
  CHECK(Get(*store, ids, "q1|piqa").state == JobState::kSkipped);

  // A ratio of 1000: 965.3 is under it, so the job runs.
  SubmitCounts looser;
  REQUIRE_OK(store->SubmitSweep(
      "r3", "s", R"({"early_abort": {"ppl_ratio": 1000, "on": "wikitext2"}})", 0, Grid(),
      t + absl::Seconds(1), &looser));
  CHECK(looser.resubmitted == 1);
  const JobInfo revived = Get(*store, ids, "q1|piqa");
  CHECK(revived.state == JobState::kPending);
  CHECK(revived.last_error.empty());
  CHECK(MustLease(*store, w, t + absl::Seconds(1)).job_key == "q1|piqa");
  auto totals = store->EarlyAbortTotals();
  REQUIRE_OK(totals);
  CHECK(totals->skipped_jobs == 0);
}

TEST_CASE("a sweep without a rule skips nothing and holds nothing", "[pg]") {
  auto store = OpenFresh();
  std::vector<NewJob> jobs = Grid();
  for (NewJob& j : jobs) j.hold = absl::ZeroDuration();
  auto sweep = store->SubmitSweep("r", "s", "{}", 0, jobs, kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  auto leased = LeaseAll(*store, w, kT0);
  CHECK(leased.size() == 6);
  Finish(*store, leased, "fp|wikitext2", Ppl(6.3), kT0);
  Finish(*store, leased, "q1|wikitext2", Ppl(965.3), kT0);
  CHECK(Get(*store, ids, "q1|piqa").state == JobState::kLeased);
}

TEST_CASE("a job another sweep asks for without a rule is released at its submission and runs",
          "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0));
  std::vector<NewJob> unheld = Grid();
  for (NewJob& j : unheld) j.hold = absl::ZeroDuration();
  const absl::Time t = kT0 + absl::Seconds(1);
  REQUIRE_OK(store->SubmitSweep("r2", "s2", "{}", 0, unheld, t));
  // Under the first sweep's rule alone only the four unheld jobs could be leased now.
  const auto leased = LeaseAll(*store, Worker(*store, "w"), t);
  CHECK(leased.size() == 6);
  CHECK(leased.count("q1|piqa") == 1);
}

TEST_CASE("a job shared by two sweeps with rules is skipped only when both rules say so, with "
          "the looser one's reason",
          "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  REQUIRE_OK(store->SubmitSweep(
      "r2", "s2", R"({"early_abort": {"ppl_ratio": 100, "on": "wikitext2"}})", 0, Grid(), kT0));
  const auto ids = Ids(*store, *sweep);
  const int64_t w = Worker(*store, "w");
  auto leased = LeaseAll(*store, w, kT0);
  REQUIRE(leased.size() == 4);  // both rules hold the piqa jobs
  const absl::Time t = kT0 + absl::Seconds(2);
  Finish(*store, leased, "fp|wikitext2", Ppl(6.3), t);
  // 100: over x3, under x100: the second sweep wants q1|piqa, so it runs.
  Finish(*store, leased, "q1|wikitext2", Ppl(100.0), t);
  CHECK(Get(*store, ids, "q1|piqa").state == JobState::kPending);
  CHECK(Get(*store, ids, "q1|piqa").not_before == t);
  // 965.3 exceeds both: skipped, named by the x100 rule.
  Finish(*store, leased, "q2|wikitext2", Ppl(965.3), t);
  const JobInfo skipped = Get(*store, ids, "q2|piqa");
  CHECK(skipped.state == JobState::kSkipped);
  CHECK_THAT(skipped.last_error, Catch::StartsWith("early abort: wikitext2 ppl 965.3 > 100 x FP"));
}

TEST_CASE("a decision lost after a result landed is made by the reaper's next tick", "[pg]") {
  const std::string conninfo = testing::FreshDatabase();
  auto opened = JobStore::Open(conninfo);
  REQUIRE_OK(opened);
  JobStore& store = **opened;
  auto sweep = store.SubmitSweep("r", "s", kRule, 0, Grid(), kT0);
  REQUIRE_OK(sweep);
  const auto ids = Ids(store, *sweep);
  auto leased = LeaseAll(store, Worker(store, "w"), kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  Finish(store, leased, "fp|wikitext2", Ppl(6.3), t);
  Finish(store, leased, "q1|wikitext2", Ppl(965.3), t);
  REQUIRE(Get(store, ids, "q1|piqa").state == JobState::kSkipped);
  // What an outage between Complete's two transactions leaves: the result stored, the job
  // still held as the submission held it.
  {
    pqxx::connection conn(conninfo);
    pqxx::work tx(conn);
    tx.exec("UPDATE jobs SET state = 'PENDING', last_error = '', finished_at = NULL, "
            "saved_seconds = 0 WHERE id = " +
            std::to_string(ids.at("q1|piqa")));
    tx.commit();
  }
  REQUIRE(Get(store, ids, "q1|piqa").state == JobState::kPending);
  auto decided = store.DecideHeldEarlyAborts(t + absl::Seconds(2));
  REQUIRE_OK(decided);
  CHECK(*decided == 1);
  CHECK(Get(store, ids, "q1|piqa").state == JobState::kSkipped);
  // q2's ppl is still to come: nothing to decide there, its hold stays.
  CHECK(Get(store, ids, "q2|piqa").not_before == kT0 + kHold);
  auto again = store.DecideHeldEarlyAborts(t + absl::Seconds(3));
  REQUIRE_OK(again);
  CHECK(*again == 0);
}

}  // namespace bitsweep::store::job_store_test
