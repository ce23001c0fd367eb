// Early abort through the coordinator's gRPC services (issue 18): a sweep's early_abort rule
// holds a quantized model's other jobs until its perplexity is in, skips them when it exceeds
// the rule, and GetSweep, QueryResults and the dashboard's JSON API say so.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "tests/server/coordinator_testing.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server::coordinator_test {
namespace {

constexpr const char* kAbortYaml = R"(name: abort
models: [/nonexistent/qwen3-tiny]
methods: [{method: rtn, wbits: [4, 3]}]
tasks: [wikitext2, c4]
early_abort: {ppl_ratio: 3.0, on: wikitext2}
)";

// "fp wikitext2", "rtn4 c4", ... of a job spec.
std::string Name(const std::string& spec_json) {
  const auto j = nlohmann::json::parse(spec_json);
  const std::string method = j["quant"]["method"];
  const std::string task = j["eval"]["task"];
  return method == "fp" ? "fp " + task
                        : method + std::to_string(j["quant"]["wbits"].get<int>()) + " " + task;
}

}  // namespace

TEST_CASE("a sweep's early_abort rule runs perplexity first and skips a diverged model's other "
          "jobs over gRPC",
          "[pg][grpc]") {
  ServerConfig config;
  config.http_listen = "127.0.0.1:0";
  Running r = Start(config);
  const v1::SubmitSweepResponse sweep = Submit(r, "req-abort", kAbortYaml);
  REQUIRE(sweep.sweep().total() == 6);
  const int64_t worker = RegisterWorker(r, "host-a/0");
  // The quantized models' C4 jobs are held: four jobs can be leased, not six.
  std::map<std::string, v1::LeaseResponse> leased;
  while (true) {
    v1::LeaseResponse l = Lease(r, worker);
    if (!l.has_job()) break;
    leased[Name(l.spec_json())] = l;
  }
  REQUIRE(leased.size() == 4);
  CHECK(leased.count("rtn4 c4") == 0);
  CHECK(leased.count("rtn3 c4") == 0);
  auto complete = [&](const std::string& name, double ppl) {
    REQUIRE_RPC_OK(Complete(r, worker, leased.at(name).job_id(), leased.at(name).lease_epoch(), ppl));
  };
  complete("fp c4", 9.0);
  complete("fp wikitext2", 6.3);
  complete("rtn4 wikitext2", 6.9);   // under 3 x 6.3: its C4 job is released at once
  complete("rtn3 wikitext2", 965.3);  // over: its C4 job is skipped
  v1::LeaseResponse next = Lease(r, worker);
  REQUIRE(next.has_job());
  CHECK(Name(next.spec_json()) == "rtn4 c4");
  CHECK_FALSE(Lease(r, worker).has_job());
  REQUIRE_RPC_OK(Complete(r, worker, next.job_id(), next.lease_epoch(), 9.5));

  v1::GetSweepRequest get;
  get.set_sweep_id(sweep.sweep().id());
  v1::Sweep s;
  REQUIRE_RPC_OK(r.client->GetSweep(Ctx().get(), get, &s));
  CHECK(s.finished());
  CHECK(s.succeeded() == 5);
  CHECK(s.skipped() == 1);
  CHECK(s.saved_worker_seconds() >= 0);

  v1::QueryResultsRequest query;
  query.set_sweep_id(sweep.sweep().id());
  v1::QueryResultsResponse results;
  REQUIRE_RPC_OK(r.client->QueryResults(Ctx().get(), query, &results));
  int skipped = 0;
  for (const v1::JobResults& j : results.jobs()) {
    if (j.skipped_reason().empty()) continue;
    ++skipped;
    CHECK(Name(j.spec_json()) == "rtn3 c4");
    CHECK(j.metrics_size() == 0);
    CHECK(j.skipped_reason() ==
          "early abort: wikitext2 ppl 965.3 > 3 x FP 6.3 = 18.9 "
          "(early_abort: {ppl_ratio: 3, on: wikitext2})");
  }
  CHECK(skipped == 1);

  v1::ListJobsRequest list;
  list.set_sweep_id(sweep.sweep().id());
  v1::ListJobsResponse jobs;
  REQUIRE_RPC_OK(r.client->ListJobs(Ctx().get(), list, &jobs));
  int skipped_state = 0;
  for (const v1::Job& j : jobs.jobs()) skipped_state += j.state() == v1::JOB_STATE_SKIPPED;
  CHECK(skipped_state == 1);

  // The dashboard's JSON: the sweep's counts and the skipped cell with its reason.
  httplib::Client http("127.0.0.1", r.coordinator->http_port());
  auto page = http.Get(("/api/sweeps/" + std::to_string(s.id())).c_str());
  REQUIRE(page);
  REQUIRE(page->status == 200);
  const auto api = nlohmann::json::parse(page->body);
  CHECK(api["sweep"]["skipped"] == 1);
  CHECK(api["sweep"].contains("saved_worker_seconds"));
  auto table = http.Get(("/api/results/table?sweep=" + std::to_string(s.id())).c_str());
  REQUIRE(table);
  REQUIRE(table->status == 200);
  INFO(table->body);
  int skipped_cells = 0;
  const nlohmann::json rows = nlohmann::json::parse(table->body)["table"]["rows"];
  for (const nlohmann::json& row : rows) {
    const nlohmann::json& cells = row["cells"];
    for (auto it = cells.begin(); it != cells.end(); ++it) {
      if (!it.value().contains("skipped")) continue;
      ++skipped_cells;
      CHECK(row["label"] == "rtn w3 g128");
      CHECK(it.key() == "c4 ppl");
      CHECK_THAT(it.value()["skipped"].get<std::string>(),
                 Catch::StartsWith("early abort: wikitext2"));
    }
  }
  CHECK(skipped_cells == 1);
}

}  // namespace bitsweep::server::coordinator_test
