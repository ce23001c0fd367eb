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
#include "tests/testing/local_pg.h"

namespace bitsweep::store {
namespace {

Status ToStatus(const Status& s) { return s; }
template <typename T>
Status ToStatus(const StatusOr<T>& s) {
  return s.status();
}
// REQUIRE that a Status or StatusOr is OK, printing the status when it is not.
#define REQUIRE_OK(expr)               \
  do {                                 \
    const Status st_ = ToStatus(expr); \
    INFO(st_.ToString());              \
    REQUIRE(st_.ok());                 \
  } while (0)

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
const absl::Duration kTtl = absl::Seconds(30);

std::unique_ptr<JobStore> OpenFresh(JobStoreOptions options = {}) {
  auto store = JobStore::Open(testing::FreshDatabase(), options);
  if (!store.ok()) FAIL("JobStore::Open: " << store.status().ToString());
  return std::move(store).value();
}

NewJob Job(const std::string& key, int32_t priority = 0) {
  NewJob j;
  j.job_key = key;
  j.artifact_key = "model-a";
  j.spec_json = R"({"key": ")" + key + R"("})";
  j.priority = priority;
  return j;
}

int64_t Worker(JobStore& store, const std::string& name, Capabilities caps = {},
               std::vector<std::string> artifacts = {}) {
  WorkerInfo w;
  w.name = name;
  w.capabilities = caps;
  w.artifacts = std::move(artifacts);
  auto id = store.RegisterWorker(w, kT0);
  REQUIRE_OK(id);
  return *id;
}

LeasedJob MustLease(JobStore& store, int64_t worker, absl::Time now) {
  auto l = store.Lease(worker, now, kTtl);
  INFO(l.status().ToString());
  REQUIRE_OK(l);
  REQUIRE(l->has_value());
  return **l;
}

JobState StateOf(JobStore& store, int64_t job_id) {
  auto j = store.GetJob(job_id);
  REQUIRE_OK(j);
  return j->state;
}

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

}  // namespace
}  // namespace bitsweep::store
