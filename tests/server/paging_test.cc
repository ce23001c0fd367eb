// Bounded queries (issue 17, item 8): every Coordinator listing is paged with capped pages and
// page tokens, results come from one query per page with provenance once per job, and a
// study-sized sweep's results are read in responses that each stay under 1 MB.
#include "server/paging.h"

#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "common/diverged.h"
#include "tests/server/coordinator_testing.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server::coordinator_test {
namespace {

constexpr size_t kOneMegabyte = 1000 * 1000;

// 2 models x (baseline + rtn w2..w8) x 7 tasks = 112 jobs: more than one default page.
constexpr const char* kWideYaml = R"(name: wide
models: [/nonexistent/a, /nonexistent/b]
methods:
  - {method: rtn, wbits: [2, 3, 4, 5, 6, 7, 8]}
tasks: [wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, boolq]
)";

// Every page of ListJobs for `request`, checking ids rise strictly across pages.
std::vector<v1::Job> AllJobs(Running& r, v1::ListJobsRequest request, int* pages) {
  std::vector<v1::Job> all;
  *pages = 0;
  while (true) {
    v1::ListJobsResponse page;
    REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), request, &page));
    ++*pages;
    for (const v1::Job& j : page.jobs()) {
      if (!all.empty()) CHECK(j.id() > all.back().id());
      all.push_back(j);
    }
    if (page.next_page_token().empty()) return all;
    request.set_page_token(page.next_page_token());
  }
}

std::string StudyYaml() {
  std::ifstream in(testing::SourceDir() + "/examples/sweeps/study.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Results shaped like a real job's: MMLU stores acc, acc_norm and one acc per category,
// subcategory and subject (~62 rows); perplexity one ppl; other tasks acc and acc_norm. The
// provenance is the size of a real one (calibration, timings, code version, worker, ~1.5 KB).
std::vector<store::JobResultRow> StudyResults(const std::string& spec_json) {
  std::vector<std::string> metrics;
  if (spec_json.find("\"task\":\"mmlu\"") != std::string::npos) {
    metrics = {"acc", "acc_norm"};
    for (int c = 0; c < 4; ++c) metrics.push_back(absl::StrCat("acc/category/category-", c));
    for (int s = 0; s < 57; ++s) metrics.push_back(absl::StrCat("acc/subject/subject-", s));
  } else if (spec_json.find("\"task\":\"wikitext2\"") != std::string::npos ||
             spec_json.find("\"task\":\"c4\"") != std::string::npos) {
    metrics = {"ppl"};
  } else {
    metrics = {"acc", "acc_norm"};
  }
  std::string provenance = R"({"code_version":"paging-test","checkpoint_sha256":")" +
                           std::string(64, 'a') + R"(","timings":{)";
  for (int i = 0; i < 40; ++i) provenance += absl::StrCat(i ? "," : "", "\"phase_", i, "\":12.5");
  provenance += R"(},"eval":{"data":"/data/mmlu/test.jsonl","limit":0},"calibration":{)";
  for (int i = 0; i < 20; ++i)
    provenance += absl::StrCat(i ? "," : "", "\"setting_", i, "\":\"c4\"");
  provenance += "}}";
  std::vector<store::JobResultRow> rows;
  for (size_t i = 0; i < metrics.size(); ++i) {
    store::JobResultRow row;
    row.metric = metrics[i];
    row.value = 0.25 + 0.001 * static_cast<double>(i);
    row.stderr_value = 0.01;
    row.n = 100;
    row.provenance_json = provenance;
    rows.push_back(std::move(row));
  }
  return rows;
}

// Runs argv to its end; its exit code (stdout and stderr appended to `log`).
int RunToExit(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = testing::Spawn(argv, log);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A worker registered straight in the coordinator's store (the tests below play its part there).
int64_t RegisterInStore(store::JobStore& store, const std::string& name,
                        const store::Capabilities& capabilities) {
  store::WorkerInfo w;
  w.name = name;
  w.capabilities = capabilities;
  auto worker = store.RegisterWorker(w, absl::Now());
  REQUIRE(worker.ok());
  return *worker;
}

}  // namespace

TEST_CASE("ListJobs pages through every job once in id order, and limit 0 no longer means all",
          "[pg][grpc]") {
  Running r = Start();
  const int64_t sweep = Submit(r, "req-wide", kWideYaml).sweep().id();
  Submit(r, "req-small", kSweepYaml);

  v1::ListJobsRequest request;
  request.set_sweep_id(sweep);
  v1::ListJobsResponse first;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), request, &first));  // limit 0, page_size 0
  CHECK(first.jobs_size() == kDefaultPageSize);
  CHECK_FALSE(first.next_page_token().empty());

  int pages = 0;
  request.set_page_size(25);
  std::vector<v1::Job> jobs = AllJobs(r, request, &pages);
  CHECK(jobs.size() == 112);
  CHECK(pages == 5);  // 25 + 25 + 25 + 25 + 12
  std::set<int64_t> ids;
  for (const auto& j : jobs) ids.insert(j.id());
  CHECK(ids.size() == 112);

  // The deprecated limit still sizes a page; every sweep's jobs each once.
  v1::ListJobsRequest every;
  every.set_limit(50);
  std::vector<v1::Job> all = AllJobs(r, every, &pages);
  CHECK(all.size() == 112 + 3);  // and the small sweep's 3 (another model)
  CHECK(pages == 3);

  // Jobs submitted between two pages neither shift nor repeat one: they come after, by id.
  v1::ListJobsRequest growing;
  growing.set_page_size(100);
  v1::ListJobsResponse before;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), growing, &before));
  REQUIRE(before.jobs_size() == 100);
  Submit(r, "req-later", "name: later\nmodels: [/nonexistent/c]\ntasks: [wikitext2, c4]\n");
  growing.set_page_token(before.next_page_token());
  std::vector<v1::Job> rest = AllJobs(r, growing, &pages);
  std::set<int64_t> seen;
  for (const auto& j : before.jobs()) seen.insert(j.id());
  for (const auto& j : rest) {
    CHECK(j.id() > before.jobs(99).id());
    CHECK(seen.insert(j.id()).second);
  }
  CHECK(seen.size() == 112 + 3 + 2);  // the later sweep's 2 baseline jobs included

  // A state filter pages too.
  v1::ListJobsRequest pending;
  pending.set_sweep_id(sweep);
  pending.set_state(v1::JOB_STATE_PENDING);
  pending.set_page_size(40);
  CHECK(AllJobs(r, pending, &pages).size() == 112);
  CHECK(pages == 3);
}

TEST_CASE(
    "A page token of another listing or filter, or a bad page size, is INVALID_ARGUMENT "
    "naming the field",
    "[pg][grpc]") {
  Running r = Start();
  const int64_t wide = Submit(r, "req-wide", kWideYaml).sweep().id();
  const int64_t small = Submit(r, "req-small", kSweepYaml).sweep().id();
  v1::ListJobsRequest request;
  request.set_sweep_id(wide);
  request.set_page_size(10);
  v1::ListJobsResponse page;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), request, &page));
  REQUIRE_FALSE(page.next_page_token().empty());

  request.set_sweep_id(small);  // the token belongs to sweep `wide`
  request.set_page_token(page.next_page_token());
  grpc::Status st = r.client->ListJobs(Ctx().get(), request, &page);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("page_token: the token continues"));

  v1::QueryResultsRequest results;
  results.set_page_token("jobs|sweep=1,state=0|5");
  v1::QueryResultsResponse none;
  st = r.client->QueryResults(Ctx().get(), results, &none);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("is not a page token of this listing (results)"));

  v1::ListSweepsRequest sweeps;
  sweeps.set_page_token("garbage");
  v1::ListSweepsResponse listed;
  CHECK(r.client->ListSweeps(Ctx().get(), sweeps, &listed).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  sweeps.set_page_token("");
  sweeps.set_page_size(-1);
  st = r.client->ListSweeps(Ctx().get(), sweeps, &listed);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("page_size: must be >= 0"));

  // ListSweeps pages newest first.
  sweeps.set_page_size(1);
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), sweeps, &listed));
  REQUIRE(listed.sweeps_size() == 1);
  CHECK(listed.sweeps(0).id() == small);
  sweeps.set_page_token(listed.next_page_token());
  REQUIRE_RPC_OK(r.client->ListSweeps(Ctx().get(), sweeps, &listed));
  REQUIRE(listed.sweeps_size() == 1);
  CHECK(listed.sweeps(0).id() == wide);
  CHECK(listed.next_page_token().empty());
}

TEST_CASE("A diverged job's result is listed with its job's spec on the results page",
          "[pg][grpc]") {
  Running r = Start();
  const int64_t sweep = Submit(r, "req-small", kSweepYaml).sweep().id();
  store::JobStore& store = r.coordinator->store();
  const int64_t worker = RegisterInStore(store, "w-diverge", {1, 0, 1});
  auto lease = store.Lease(worker, absl::Now(), absl::Minutes(1));
  REQUIRE(lease.ok());
  REQUIRE(lease->has_value());
  auto failed = store.Fail((*lease)->job_id, (*lease)->epoch, DivergedReason("ppl", INFINITY),
                           /*retryable=*/false, absl::Now());
  REQUIRE(failed.ok());
  v1::QueryResultsRequest q;
  q.set_sweep_id(sweep);
  v1::QueryResultsResponse results;
  REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), q, &results));
  REQUIRE(results.jobs_size() == 1);
  CHECK(results.jobs(0).job_id() == (*lease)->job_id);
  CHECK(results.jobs(0).spec_json() == (*lease)->spec_json);
  REQUIRE(results.jobs(0).metrics_size() == 1);
  CHECK(results.jobs(0).metrics(0).name() == "ppl");
  CHECK(results.jobs(0).metrics(0).value() == INFINITY);
}

TEST_CASE(
    "A study-sized sweep's results and jobs are read in pages that each stay under 1 MB, "
    "provenance once per job",
    "[pg][grpc][cli][slow]") {
  Running r = Start();
  const v1::SubmitSweepResponse submitted = Submit(r, "req-study", StudyYaml());
  REQUIRE(submitted.sweep().total() == 1764);
  const int64_t sweep = submitted.sweep().id();

  // Every job succeeds with MMLU-shaped results, written through the store as a worker would.
  store::JobStore& store = r.coordinator->store();
  const int64_t worker = RegisterInStore(store, "w-study", {2, 1000, 2});
  size_t stored_rows = 0;
  while (true) {
    auto lease = store.Lease(worker, absl::Now(), absl::Minutes(5));
    REQUIRE(lease.ok());
    if (!lease->has_value()) break;
    const std::vector<store::JobResultRow> rows = StudyResults((*lease)->spec_json);
    stored_rows += rows.size();
    REQUIRE(store.Complete((*lease)->job_id, (*lease)->epoch, rows, absl::Now()).ok());
  }
  CHECK(stored_rows > 196 * 62);  // the 196 MMLU jobs alone

  // A client whose channel refuses any message over 1 MB reads every page.
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(kOneMegabyte));
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(r.coordinator->port()),
                                           grpc::InsecureChannelCredentials(), args);
  auto client = v1::Coordinator::NewStub(channel);

  v1::QueryResultsRequest q;
  q.set_sweep_id(sweep);
  q.set_page_size(kMaxPageSize);  // the largest page a client may ask for
  std::set<int64_t> jobs;
  size_t metrics = 0, pages = 0;
  size_t old_form_bytes = 0;  // the same rows as the old ResultRow: spec and provenance on each
  while (true) {
    v1::QueryResultsResponse page;
    REQUIRE_RPC_OK(client->QueryResults(Ctx().get(), q, &page));
    ++pages;
    CHECK(page.ByteSizeLong() < kOneMegabyte);
    // The deprecated flat form stays empty (read on purpose: no deprecation warning for it).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    CHECK(page.rows_size() == 0);
#pragma GCC diagnostic pop
    for (const v1::JobResults& job : page.jobs()) {
      CHECK(jobs.insert(job.job_id()).second);
      metrics += static_cast<size_t>(job.metrics_size());
      for (const v1::Metric& m : job.metrics()) {
        v1::ResultRow row;
        row.set_job_id(job.job_id());
        row.set_job_key(job.job_key());
        row.set_spec_json(job.spec_json());
        *row.mutable_metric() = m;
        row.set_provenance_json(job.provenance_json());
        old_form_bytes += row.ByteSizeLong();
      }
      CHECK(job.provenance_json().find("paging-test") != std::string::npos);
    }
    if (page.next_page_token().empty()) break;
    q.set_page_token(page.next_page_token());
  }
  CHECK(jobs.size() == 1764);
  CHECK(metrics == stored_rows);
  CHECK(pages > 1);
  // What the one unpaged response of old held: past gRPC's 4 MB default.
  CHECK(old_form_bytes > 4 * kOneMegabyte);

  v1::ListJobsRequest list;
  list.set_sweep_id(sweep);
  list.set_page_size(kMaxPageSize);
  size_t listed = 0;
  while (true) {
    v1::ListJobsResponse page;
    REQUIRE_RPC_OK(client->ListJobs(Ctx().get(), list, &page));
    CHECK(page.ByteSizeLong() < kOneMegabyte);
    listed += static_cast<size_t>(page.jobs_size());
    if (page.next_page_token().empty()) break;
    list.set_page_token(page.next_page_token());
  }
  CHECK(listed == 1764);

  // `bitsweep results` and `bitsweep status`, the real executable, read every page: the table
  // has the grid's 7 x 28 = 196 rows (csv: one header line more); status one line per job.
#ifdef BITSWEEP_NO_CLI
  WARN("torch-free build (scripts/test-sanitizers): no bitsweep executable; the CLI part is "
       "checked by the normal build");
  return;
#endif
  const std::string dir = testing::ScratchDir("paging-study-cli");
  const std::string coordinator = "127.0.0.1:" + std::to_string(r.coordinator->port());
  const std::string bin = testing::BinaryDir() + "/cli/bitsweep";
  CHECK(RunToExit({bin, "results", std::to_string(sweep), "--coordinator", coordinator, "--format",
                   "csv", "--output", dir + "/results.csv"},
                  dir + "/results.log") == 0);
  INFO(testing::Slurp(dir + "/results.log"));
  CHECK(testing::Count(testing::Slurp(dir + "/results.csv"), "\n") == 196 + 1);
  CHECK(RunToExit({bin, "results", std::to_string(sweep), "--coordinator", coordinator, "--format",
                   "json", "--output", dir + "/results.json"},
                  dir + "/results.log") == 0);
  CHECK(testing::Count(testing::Slurp(dir + "/results.json"), "\"metric\": ") ==
        static_cast<int>(stored_rows));
  CHECK(RunToExit({bin, "status", std::to_string(sweep), "--coordinator", coordinator},
                  dir + "/status.log") == 0);
  CHECK(testing::Count(testing::Slurp(dir + "/status.log"), "SUCCEEDED") == 1764);
}

}  // namespace bitsweep::server::coordinator_test
