// The results dashboard end to end: a real PostgreSQL, the bitsweep-coordinator binary with its
// dashboard and a client token, results completed through the real WorkerGateway protocol over
// loopback gRPC (one job fails once and is retried), a second sweep canceled, and `bitsweep
// results --format html`; then dashboard.mjs drives the page and the report in Debian's
// headless Chromium (playwright-core) and checks the numbers against what QueryResults returned.
// Screenshots are kept in the test's scratch directory (printed).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "store/local_postgres.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
namespace pb = bitsweep::v1;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;
using nlohmann::json;

constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kToken[] = "dashboard-e2e-token";

// fp, rtn w2/w3/w4 and gptq w3/w4 (g64) on wikitext2 and a multiple-choice file: 12 jobs.
std::string SweepYaml(const std::string& dir) {
  return "name: dash-e2e\nmodels: [" + dir +
         "/qwen3-tiny]\n"
         "methods:\n"
         "  - {method: rtn, wbits: [2, 3, 4], group: [64]}\n"
         "  - {method: gptq, wbits: [3, 4], group: [64]}\n"
         "tasks: [wikitext2, " +
         dir + "/facts.jsonl]\n";
}
// Shares the baseline; its awq w4 job is canceled before any worker leases it.
std::string CanceledYaml(const std::string& dir) {
  return "name: dash-canceled\nmodels: [" + dir +
         "/qwen3-tiny]\nmethods:\n  - {method: awq, wbits: [4], group: [64]}\n"
         "tasks: [wikitext2]\n";
}

std::unique_ptr<grpc::ClientContext> Ctx(bool client) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (client) ctx->AddMetadata("authorization", std::string("Bearer ") + kToken);
  return ctx;
}

#define REQUIRE_RPC_OK(expr)                               \
  do {                                                     \
    const grpc::Status st_ = (expr);                       \
    INFO(st_.error_code() << ": " << st_.error_message()); \
    REQUIRE(st_.ok());                                     \
  } while (0)

// The numbers a worker would report: perplexity grows and accuracy falls as bits shrink, GPTQ a
// little better than RTN, and values with many digits so that formatting is exercised.
json Metrics(const json& spec) {
  const std::string method = spec["quant"]["method"];
  const int bits = spec["quant"]["wbits"];
  const double loss = method == "fp" ? 0 : (method == "gptq" ? 0.6 : 1.0) * (16.0 / bits - 1);
  if (spec["eval"]["task"] == "wikitext2") {
    return json::array({{{"name", "ppl"}, {"value", 9.876543 * (1 + 0.31 * loss)}, {"n", 4}}});
  }
  return json::array({{{"name", "acc"}, {"value", 0.712345 - 0.0523 * loss}, {"n", 200}},
                      {{"name", "acc_norm"}, {"value", 0.70}, {"n", 200}}});
}

int Run(const std::string& command) {
  const int s = std::system(command.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

}  // namespace

TEST_CASE(
    "the dashboard shows the stored results, plots them, shows a canceled sweep as canceled and "
    "a job's events, and the HTML report shows the same table offline",
    "[e2e][pg][grpc][http][browser]") {
  const std::string node_modules = BITSWEEP_PLAYWRIGHT_NODE_MODULES;
  if (!fs::exists(kChromium)) {
    WARN("skipped: " << kChromium << " is not installed (Debian package chromium)");
    return;
  }
  REQUIRE(fs::exists(node_modules + "/playwright-core/package.json"));
  const std::string dir = bitsweep::testing::ScratchDir("dashboard_e2e");
  const std::string bin = bitsweep::testing::BinaryDir();
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"a\", \"choices\": [\"b\", \"c\"], \"gold\": 0}\n");
  WriteFile(dir + "/sweep.yaml", SweepYaml(dir));

  bitsweep::store::LocalPostgresOptions po;
  po.data_dir = dir + "/pg";
  po.fsync = false;
  auto pg = bitsweep::store::LocalPostgres::Start(po);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  auto db = (*pg)->CreateDatabase("dashboard");
  REQUIRE(db.ok());

  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const int http_port = bitsweep::testing::FreePort();
  const std::string log = dir + "/coordinator.log";
  pid_t coord = bitsweep::testing::Spawn(
      {bin + "/server/bitsweep-coordinator", "--listen", addr, "--db", *db, "--metrics-listen", "",
       "--http-listen", "127.0.0.1:" + std::to_string(http_port), "--client-token", kToken},
      log);
  struct Cleanup {
    pid_t pid;
    ~Cleanup() { bitsweep::testing::Signal(pid, SIGTERM); }
  } cleanup{coord};
  REQUIRE(bitsweep::testing::WaitForText(log, "dashboard http://", 60));
  INFO(Slurp(log));

  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto client = pb::Coordinator::NewStub(channel);
  auto gateway = pb::WorkerGateway::NewStub(channel);
  pb::SubmitSweepRequest submit;
  submit.set_request_id("dashboard-e2e-1");
  submit.set_sweep_yaml(SweepYaml(dir));
  pb::SubmitSweepResponse sweep;
  REQUIRE_RPC_OK(client->SubmitSweep(Ctx(true).get(), submit, &sweep));
  REQUIRE(sweep.sweep().total() == 12);

  // A worker over the real protocol: register, lease, heartbeat, complete (the first wikitext2
  // job fails once and is retried after the backoff).
  pb::RegisterRequest reg;
  reg.set_name("dash-worker");
  reg.set_devices(1);
  reg.set_memory_gb(64);
  reg.set_max_tp(1);
  pb::RegisterResponse worker;
  REQUIRE_RPC_OK(gateway->Register(Ctx(false).get(), reg, &worker));
  bool failed_once = false;
  int64_t retried_job = 0;
  int completed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (completed < 12 && std::chrono::steady_clock::now() < deadline) {
    pb::LeaseRequest lease;
    lease.set_worker_id(worker.worker_id());
    pb::LeaseResponse job;
    REQUIRE_RPC_OK(gateway->Lease(Ctx(false).get(), lease, &job));
    if (!job.has_job()) {  // the retried job waits out its backoff
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    const json spec = json::parse(job.spec_json());
    pb::HeartbeatRequest hb;
    hb.set_worker_id(worker.worker_id());
    hb.set_job_id(job.job_id());
    hb.set_lease_epoch(job.lease_epoch());
    hb.set_progress(0.5);
    hb.set_phase("evaluating");
    pb::HeartbeatResponse hb_resp;
    REQUIRE_RPC_OK(gateway->Heartbeat(Ctx(false).get(), hb, &hb_resp));
    if (!failed_once && spec["eval"]["task"] == "wikitext2" && spec["quant"]["method"] == "rtn") {
      pb::FailRequest fail;
      fail.set_worker_id(worker.worker_id());
      fail.set_job_id(job.job_id());
      fail.set_lease_epoch(job.lease_epoch());
      fail.set_reason("worker lost its GPU (test)");
      fail.set_retryable(true);
      pb::FailResponse fail_resp;
      REQUIRE_RPC_OK(gateway->Fail(Ctx(false).get(), fail, &fail_resp));
      failed_once = true;
      retried_job = job.job_id();
      continue;
    }
    pb::CompleteRequest complete;
    complete.set_worker_id(worker.worker_id());
    complete.set_job_id(job.job_id());
    complete.set_lease_epoch(job.lease_epoch());
    for (const auto& m : Metrics(spec)) {
      auto* out = complete.add_metrics();
      out->set_name(m["name"].get<std::string>());
      out->set_value(m["value"].get<double>());
      out->set_n(m["n"].get<int64_t>());
    }
    complete.set_provenance_json(json{
        {"code_version", "dashboard-e2e"},
        {"worker", "dash-worker"},
        {"seconds", 1.5}}.dump());
    pb::CompleteResponse done;
    REQUIRE_RPC_OK(gateway->Complete(Ctx(false).get(), complete, &done));
    ++completed;
  }
  REQUIRE(completed == 12);
  REQUIRE(retried_job > 0);

  WriteFile(dir + "/canceled.yaml", CanceledYaml(dir));
  pb::SubmitSweepRequest submit2;
  submit2.set_request_id("dashboard-e2e-2");
  submit2.set_sweep_yaml(CanceledYaml(dir));
  pb::SubmitSweepResponse sweep2;
  REQUIRE_RPC_OK(client->SubmitSweep(Ctx(true).get(), submit2, &sweep2));
  pb::CancelSweepRequest cancel;
  cancel.set_sweep_id(sweep2.sweep().id());
  pb::Sweep canceled;
  REQUIRE_RPC_OK(client->CancelSweep(Ctx(true).get(), cancel, &canceled));
  REQUIRE(canceled.canceled() == 1);

  // What the table must show: the headline metric of every job, as QueryResults returns it.
  pb::QueryResultsRequest query;
  query.set_sweep_id(sweep.sweep().id());
  pb::QueryResultsResponse results;
  REQUIRE_RPC_OK(client->QueryResults(Ctx(true).get(), query, &results));
  json cells = json::array();
  std::set<std::string> series;
  for (const auto& row : results.rows()) {
    const json spec = json::parse(row.spec_json());
    const std::string method = spec["quant"]["method"];
    const int bits = spec["quant"]["wbits"];
    const bool ppl = row.metric().name() == "ppl";
    if (!ppl && row.metric().name() != "acc") continue;
    if (method != "fp") series.insert(method);
    const std::string task = spec["eval"]["task"] == "wikitext2" ? "wikitext2" : "facts";
    char text[32];
    std::snprintf(text, sizeof(text), ppl ? "%.3f" : "%.4f", row.metric().value());
    cells.push_back({{"label", method == "fp" ? std::string("FP (baseline)")
                                              : method + " w" + std::to_string(bits) + " g64"},
                     {"column", task + (ppl ? " ppl" : " acc")},
                     {"value", row.metric().value()},
                     {"text", text}});
  }
  REQUIRE(cells.size() == 12);
  WriteFile(dir + "/expected.json", json{{"cells", cells},
                                         {"columns", json::array({"wikitext2 ppl", "facts acc"})},
                                         {"series", series.size()},
                                         {"jobs", 12}}
                                        .dump(2));

  // The same tables as one self-contained HTML file, through the CLI over gRPC.
  const std::string report = dir + "/report.html";
  REQUIRE(Run(bin + "/cli/bitsweep results " + std::to_string(sweep.sweep().id()) +
              " --format html --output " + report + " --coordinator " + addr + " --token " +
              kToken + " > " + dir + "/report.log 2>&1") == 0);
  const std::string html = Slurp(report);
  CHECK(html.find("<script src=") == std::string::npos);  // nothing loaded from elsewhere
  CHECK(html.find("uPlot") != std::string::npos);

  const std::string shots = dir + "/screenshots";
  const std::string out = dir + "/dashboard.out";
  const int rc = Run("node " + bitsweep::testing::SourceDir() +
                     "/tests/dashboard/dashboard.mjs --node-modules " + node_modules +
                     " --url http://127.0.0.1:" + std::to_string(http_port) + "/ --token " +
                     kToken + " --sweep " + std::to_string(sweep.sweep().id()) + " --canceled " +
                     std::to_string(sweep2.sweep().id()) + " --job " + std::to_string(retried_job) +
                     " --expected " + dir + "/expected.json --report " + report + " --out " +
                     shots + " > " + out + " 2>&1");
  std::cout << "dashboard screenshots: " << shots << "\n";
  INFO(Slurp(out));
  CHECK(rc == 0);
}
