// The JobStore's migrations, sweep submission (replays, job keys, answers from earlier results),
// its event history, results written once and behaviour across a PostgreSQL outage.
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

TEST_CASE("migrations apply once however often and however concurrently they run", "[pg]") {
  const std::string conninfo = testing::FreshDatabase();
  std::vector<std::thread> threads;
  std::vector<StatusOr<int>> versions(4, absl::UnknownError("not run"));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] { versions[i] = Migrate(conninfo); });
  }
  for (auto& t : threads) t.join();
  for (const auto& v : versions) {
    REQUIRE_OK(v);
    CHECK(*v == internal::Migrations().back().version);
  }
  auto again = Migrate(conninfo);
  REQUIRE_OK(again);
  REQUIRE_OK(JobStore::Open(conninfo));
  REQUIRE_OK(JobStore::Open(conninfo));
}

TEST_CASE(
    "migration 2 moves a version-1 database's worker artifacts into worker_artifacts in their "
    "order, and the store leases by them",
    "[pg]") {
  const std::string conninfo = testing::FreshDatabase();
  auto v1 = Migrate(conninfo, 1);
  REQUIRE_OK(v1);
  REQUIRE(*v1 == 1);
  {
    pqxx::connection conn(conninfo);
    pqxx::work tx(conn);
    // As a version-1 coordinator left them: appended in the order gained, not sorted.
    tx.exec(
        "INSERT INTO workers (name, artifacts, registered_at, last_heartbeat) VALUES "
        "('w-held', '{model-z,model-b}', now(), now()), ('w-none', '{}', now(), now())");
    tx.commit();
  }
  auto store = JobStore::Open(conninfo);
  REQUIRE_OK(store);
  auto held = (*store)->GetWorker(1);
  auto none = (*store)->GetWorker(2);
  REQUIRE_OK(held);
  REQUIRE_OK(none);
  CHECK(held->name == "w-held");
  CHECK(held->artifacts == std::vector<std::string>{"model-z", "model-b"});
  CHECK(none->artifacts.empty());
  {
    pqxx::connection conn(conninfo);
    pqxx::nontransaction tx(conn);
    CHECK(tx.exec("SELECT 1 FROM information_schema.columns WHERE table_name = 'workers' "
                  "AND column_name = 'artifacts'")
              .empty());
  }
  NewJob b = Job("b");
  b.artifact_key = "model-b";
  REQUIRE_OK((*store)->SubmitSweep("r", "s", "{}", 0, {Job("a"), b}, kT0));
  CHECK(MustLease(**store, 1, kT0).job_key == "b");  // affinity beats age
}

TEST_CASE(
    "a worker holds the artifact of every job it completed, once each and in the order gained, "
    "and leases prefer jobs on them",
    "[pg]") {
  auto store = OpenFresh();
  auto on = [](const std::string& key, const std::string& artifact) {
    NewJob j = Job(key);
    j.artifact_key = artifact;
    return j;
  };
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0,
                                {on("x1", "model-x"), on("y1", "model-y"), on("x2", "model-x"),
                                 on("z1", "model-z"), on("y2", "model-y")},
                                kT0));
  // Keys as JobSpec::ArtifactKey writes them (';' separates fields: pqxx 6's array parser splits
  // an unquoted array element there) and characters PostgreSQL quotes in array output.
  const std::string q = "artifact/v1;model=/m/Qwen3-0.6B;method=rtn;wbits=4;abits=0;group=128";
  const std::string quoted = "artifact/v1;model=/m/my model;opt.x={a,\\\"b\\\"}";
  const int64_t w = Worker(*store, "w", {}, {q, quoted});
  for (const char* expect : {"x1", "x2"}) {  // after x1 it holds model-x: x2 beats older y1
    const LeasedJob l = MustLease(*store, w, kT0);
    CHECK(l.job_key == expect);
    REQUIRE_OK(store->Complete(l.job_id, l.epoch, {}, kT0));
  }
  const LeasedJob y1 = MustLease(*store, w, kT0);
  CHECK(y1.job_key == "y1");
  REQUIRE_OK(store->Fail(y1.job_id, y1.epoch, "boom", /*retryable=*/false, kT0));
  auto info = store->GetWorker(w);
  REQUIRE_OK(info);
  // model-x once although two jobs on it completed; y1 failed, so not model-y.
  CHECK(info->artifacts == std::vector<std::string>{q, quoted, "model-x"});
  // Registering again with what it holds now keeps the earlier ones, each once.
  WorkerInfo again;
  again.name = "w";
  again.artifacts = {"model-y", "model-x", "model-y"};
  REQUIRE_OK(store->RegisterWorker(again, kT0));
  info = store->GetWorker(w);
  REQUIRE_OK(info);
  CHECK(info->artifacts == std::vector<std::string>{q, quoted, "model-x", "model-y"});
  CHECK(MustLease(*store, w, kT0).job_key == "y2");  // affinity beats the older z1
}

TEST_CASE("a replayed SubmitSweep returns the original sweep and shared job keys are one job",
          "[pg]") {
  auto store = OpenFresh();
  auto a = store->SubmitSweep("req-a", "a", "{}", 0, {Job("k1"), Job("k2")}, kT0);
  REQUIRE_OK(a);
  auto replay = store->SubmitSweep("req-a", "a", "{}", 0, {Job("k1"), Job("k2"), Job("k9")}, kT0);
  REQUIRE_OK(replay);
  CHECK(*replay == *a);
  auto b = store->SubmitSweep("req-b", "b", "{}", 0, {Job("k2"), Job("k3")}, kT0);
  REQUIRE_OK(b);
  CHECK(*b != *a);

  auto counts = store->CountJobsByState();
  REQUIRE_OK(counts);
  CHECK(counts->at(JobState::kPending) == 3);  // k1, k2, k3: k9 of the replay was ignored
  auto jobs_a = store->ListJobs(*a);
  auto jobs_b = store->ListJobs(*b);
  REQUIRE_OK(jobs_a);
  REQUIRE_OK(jobs_b);
  REQUIRE(jobs_a->size() == 2);
  REQUIRE(jobs_b->size() == 2);
  CHECK((*jobs_a)[1].job_key == "k2");
  CHECK((*jobs_b)[0].job_key == "k2");
  CHECK((*jobs_a)[1].id == (*jobs_b)[0].id);
  auto sweeps = store->ListSweeps();
  REQUIRE_OK(sweeps);
  REQUIRE(sweeps->size() == 2);
  CHECK(sweeps->at(1).jobs_by_state.at(JobState::kPending) == 2);
  // The SUBMIT event of the shared job is recorded once.
  auto events = store->Events((*jobs_a)[1].id);
  REQUIRE_OK(events);
  CHECK(events->size() == 1);
}

TEST_CASE("a job key resubmitted with a different spec is ALREADY_EXISTS", "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r1", "s", "{}", 0, {Job("k")}, kT0));
  NewJob changed = Job("k");
  changed.spec_json = R"({"key": "other"})";
  auto st = store->SubmitSweep("r2", "s", "{}", 0, {changed}, kT0);
  CHECK(st.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(st.status().message().find("'k'") != std::string::npos);
  // The failed submit left nothing behind.
  auto sweeps = store->ListSweeps();
  REQUIRE_OK(sweeps);
  CHECK(sweeps->size() == 1);
  CHECK(store->SubmitSweep("r3", "s", "not json", 0, {}, kT0).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(store->SubmitSweep("r4", "s", "{}", 0, {Job("x"), Job("x")}, kT0).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a sweep asking for an already succeeded job sees its result without new work", "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r1", "s", "{}", 0, {Job("k")}, kT0));
  const int64_t w = Worker(*store, "w");
  LeasedJob l = MustLease(*store, w, kT0);
  JobResultRow r;
  r.metric = "ppl";
  r.value = 9.5;
  REQUIRE_OK(store->Complete(l.job_id, l.epoch, {r}, kT0));
  auto second = store->SubmitSweep("r2", "t", "{}", 0, {Job("k")}, kT0);
  REQUIRE_OK(second);
  ResultFilter f;
  f.sweep_id = *second;
  auto results = store->Results(f);
  REQUIRE_OK(results);
  REQUIRE(results->size() == 1);
  CHECK(results->at(0).value == 9.5);
  auto none = store->Lease(w, kT0, kTtl);
  REQUIRE_OK(none);
  CHECK_FALSE(none->has_value());
}

TEST_CASE("the events table records every transition with epoch, worker and reason", "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {Job("k")}, kT0));
  const int64_t w = Worker(*store, "w");
  LeasedJob l1 = MustLease(*store, w, kT0);
  REQUIRE_OK(store->Heartbeat(l1.job_id, l1.epoch, kT0 + absl::Seconds(1), kTtl));
  REQUIRE_OK(store->Fail(l1.job_id, l1.epoch, "flaky", true, kT0 + absl::Seconds(2)));
  LeasedJob l2 = MustLease(*store, w, kT0 + absl::Minutes(1));
  REQUIRE_OK(store->ExpireLeases(kT0 + absl::Minutes(2)));
  LeasedJob l3 = MustLease(*store, w, kT0 + absl::Minutes(10));
  REQUIRE_OK(store->CancelJob(l3.job_id, "user", kT0 + absl::Minutes(11)));
  REQUIRE_OK(store->Complete(l3.job_id, l3.epoch, {}, kT0 + absl::Minutes(12)));

  auto events = store->Events(l1.job_id);
  REQUIRE_OK(events);
  using S = JobState;
  using E = JobEvent;
  struct Want {
    E event;
    std::optional<S> from;
    S to;
    int64_t epoch;
  };
  const std::vector<Want> want = {
      {E::kSubmit, std::nullopt, S::kPending, 0},
      {E::kLease, S::kPending, S::kLeased, 1},
      {E::kRetry, S::kLeased, S::kPending, 1},
      {E::kLease, S::kPending, S::kLeased, 2},
      {E::kExpire, S::kLeased, S::kPending, 2},
      {E::kLease, S::kPending, S::kLeased, 3},
      {E::kCancel, S::kLeased, S::kCancelRequested, 3},
      {E::kComplete, S::kCancelRequested, S::kCanceled, 3},
  };
  REQUIRE(events->size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("event " << i);
    const JobEventRow& e = events->at(i);
    CHECK(e.event == want[i].event);
    CHECK(e.from == want[i].from);
    CHECK(e.to == want[i].to);
    CHECK(e.epoch == want[i].epoch);
    // Each recorded change is one the transition table allows.
    if (e.from) CHECK(*Apply(*e.from, e.event) == e.to);
  }
  CHECK(events->at(1).worker_id == w);
  CHECK(events->at(1).at == kT0);
  CHECK(events->at(2).reason == "flaky");
  CHECK(events->at(4).reason == "lease expired");
}

TEST_CASE("results are written exactly once when Complete is replayed", "[pg]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {Job("k")}, kT0));
  const int64_t w = Worker(*store, "w");
  LeasedJob l = MustLease(*store, w, kT0);
  JobResultRow ppl;
  ppl.metric = "ppl";
  ppl.value = 7.25;
  ppl.stderr_value = 0.5;
  ppl.n = 1000;
  ppl.provenance_json = R"({"git": "abc"})";
  JobResultRow acc;
  acc.metric = "acc";
  acc.value = 0.5;
  auto done = store->Complete(l.job_id, l.epoch, {ppl, acc}, kT0);
  REQUIRE_OK(done);
  CHECK(*done == JobState::kSucceeded);
  auto replayed = store->Complete(l.job_id, l.epoch, {ppl, acc}, kT0);
  REQUIRE_OK(replayed);
  CHECK(*replayed == JobState::kSucceeded);
  ResultFilter f;
  f.job_key = "k";
  auto results = store->Results(f);
  REQUIRE_OK(results);
  REQUIRE(results->size() == 2);
  CHECK(results->at(0).metric == "acc");
  CHECK(results->at(1).value == 7.25);
  CHECK(results->at(1).stderr_value == 0.5);
  CHECK(results->at(1).n == 1000);
  CHECK(results->at(1).provenance_json == R"({"git": "abc"})");
  f.metric = "ppl";
  CHECK(store->Results(f)->size() == 1);
  auto events = store->Events(l.job_id);
  REQUIRE_OK(events);
  CHECK(std::count_if(events->begin(), events->end(),
                      [](const JobEventRow& e) { return e.event == JobEvent::kComplete; }) == 1);
  // The finished worker now holds the job's artifact.
  REQUIRE_OK(store->SubmitSweep("r2", "s", "{}", 0, {Job("k2")}, kT0));
  CHECK(MustLease(*store, w, kT0).artifact_key == "model-a");
}

TEST_CASE("calls during a PostgreSQL outage return UNAVAILABLE and work again after restart",
          "[pg][fault]") {
  auto store = OpenFresh();
  REQUIRE_OK(store->SubmitSweep("r", "s", "{}", 0, {Job("a"), Job("b")}, kT0));
  const int64_t w = Worker(*store, "w");
  LeasedJob l = MustLease(*store, w, kT0);

  REQUIRE_OK(testing::LocalPg().Stop());
  CHECK(store->Heartbeat(l.job_id, l.epoch, kT0, kTtl).status().code() ==
        absl::StatusCode::kUnavailable);
  CHECK(store->Lease(w, kT0, kTtl).status().code() == absl::StatusCode::kUnavailable);
  CHECK(store->CountJobsByState().status().code() == absl::StatusCode::kUnavailable);
  REQUIRE_OK(testing::LocalPg().StartAgain());

  // Retrying after the outage: the lease from before is intact and the store reconnects.
  REQUIRE_OK(store->Heartbeat(l.job_id, l.epoch, kT0, kTtl));
  REQUIRE_OK(store->Complete(l.job_id, l.epoch, {}, kT0));
  REQUIRE_OK(testing::LocalPg().Restart());
  LeasedJob next = MustLease(*store, w, kT0);
  CHECK(next.job_key == "b");
}

TEST_CASE(
    "ResultsPage counts jobs not metric rows and carries each job's provenance once, "
    "in one statement per page",
    "[pg]") {
  auto store = OpenFresh();
  auto sweep = store->SubmitSweep("r1", "s", "{}", 0, {Job("a"), Job("b"), Job("c")}, kT0);
  REQUIRE_OK(sweep);
  auto other = store->SubmitSweep("r2", "t", "{}", 0, {Job("d")}, kT0);
  REQUIRE_OK(other);
  const int64_t w = Worker(*store, "w");
  for (int i = 0; i < 4; ++i) {
    LeasedJob l = MustLease(*store, w, kT0);
    std::vector<JobResultRow> rows;
    for (const char* metric : {"acc", "acc/subject/x", "acc_norm"}) {
      JobResultRow r;
      r.metric = metric;
      r.value = i;
      r.provenance_json = "{\"job\":\"" + l.job_key + "\"}";
      rows.push_back(r);
    }
    REQUIRE_OK(store->Complete(l.job_id, l.epoch, rows, kT0));
  }
  auto first = store->ResultsPage(*sweep, 0, 2);
  REQUIRE_OK(first);
  REQUIRE(first->size() == 2);  // two jobs, six metric rows
  for (const JobResults& job : *first) {
    REQUIRE(job.metrics.size() == 3);
    CHECK(job.metrics[0].metric == "acc");
    CHECK(job.metrics[2].metric == "acc_norm");
    CHECK(job.provenance_json == "{\"job\":\"" + job.job_key + "\"}");
    CHECK(job.spec_json == R"({"key": ")" + job.job_key + R"("})");
  }
  CHECK(first->at(0).job_id < first->at(1).job_id);
  auto rest = store->ResultsPage(*sweep, first->back().job_id, 2);
  REQUIRE_OK(rest);
  REQUIRE(rest->size() == 1);  // the sweep's third job; "d" belongs to the other sweep
  CHECK(rest->at(0).job_key == "c");
  auto every = store->ResultsPage(0, 0, 10);
  REQUIRE_OK(every);
  CHECK(every->size() == 4);
  CHECK(store->ResultsPage(*sweep, 0, 0).status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bitsweep::store::job_store_test
