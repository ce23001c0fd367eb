// The results dashboard end to end: a real PostgreSQL, the bitsweep-coordinator binary with its
// dashboard and a client token, a real bitsweep-worker running a small sweep on the shipped demo
// model (models/demo), a second sweep canceled, and `bitsweep results --format html`; then
// dashboard.mjs drives the page and the report in Debian's headless Chromium (playwright-core) and
// checks the numbers against what QueryResults returned. Screenshots are kept in the test's scratch
// directory (printed).
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
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"
#include "tests/testing/rpc.h"

namespace {

namespace fs = std::filesystem;
namespace pb = bitsweep::v1;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;
using nlohmann::json;

constexpr char kChromium[] = "/usr/bin/chromium";
constexpr char kToken[] = "dashboard-e2e-token";

// The shipped demo model under RTN at four widths with groups of 64 and two per channel, and
// its FP baseline, on its held-out WikiText-2-style text and a small facts task: 14 jobs that
// a real worker runs in seconds.
std::string SweepYaml(const std::string& dir) {
  return "name: dash-e2e\nmodels: [" + bitsweep::testing::SourceDir() +
         "/models/demo]\n"
         "methods:\n"
         "  - {method: rtn, wbits: [2, 3, 4, 8], group: [64]}\n"
         "  - {method: rtn, wbits: [4, 8]}\n"
         "tasks: [{task: wikitext2, limit: 4}, " +
         dir + "/facts.jsonl]\neval: {seqlen: 256}\n";
}
// Shares the baseline; its rtn w2 g32 job is canceled (no worker is running by then).
std::string CanceledYaml(const std::string& dir) {
  return "name: dash-canceled\nmodels: [" + bitsweep::testing::SourceDir() +
         "/models/demo]\nmethods:\n  - {method: rtn, wbits: [2], group: [32]}\n"
         "tasks: [{task: wikitext2, limit: 4}]\neval: {seqlen: 256}\n";
}

// Sums as the demo model's training text states them ("Three plus four is seven.").
std::string FactsJsonl() {
  const char* num[] = {"zero",  "one",   "two",  "three", "four",   "five",  "six",
                       "seven", "eight", "nine", "ten",   "eleven", "twelve"};
  std::string out;
  for (int a = 1; a <= 6; ++a) {
    for (int b = 0; b <= 3; ++b) {
      std::string first = num[a];
      first[0] = static_cast<char>(first[0] - 'a' + 'A');
      const int s = a + b;
      out += "{\"context\": \"Ines lived near the harbor. " + first + " plus " + num[b] +
             " is\", \"choices\": [\"" + num[s] + "\", \"" + num[(s + 1) % 13] + "\", \"" +
             num[(s + 12) % 13] + "\"], \"gold\": 0}\n";
    }
  }
  return out;
}

std::unique_ptr<grpc::ClientContext> Ctx() { return bitsweep::testing::RpcContext(kToken, 30); }

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
  WriteFile(dir + "/facts.jsonl", FactsJsonl());
  WriteFile(dir + "/sweep.yaml", SweepYaml(dir));

  auto pg = bitsweep::testing::StartPostgres(dir);
  auto db = pg->CreateDatabase("dashboard");
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
  pb::SubmitSweepRequest submit;
  submit.set_request_id("dashboard-e2e-1");
  submit.set_sweep_yaml(SweepYaml(dir));
  pb::SubmitSweepResponse sweep;
  REQUIRE_RPC_OK(client->SubmitSweep(Ctx().get(), submit, &sweep));
  REQUIRE(sweep.sweep().total() == 14);

  // The sweep's page, opened before any worker runs, must follow it to its end by itself.
  // Screenshots outlive the test's scratch directory (removed when the test passes).
  const std::string shots = bitsweep::testing::BinaryDir() + "/dashboard-screenshots";
  std::filesystem::remove_all(shots);
  std::filesystem::create_directories(shots);
  const std::string script = bitsweep::testing::SourceDir() + "/tests/dashboard/dashboard.mjs";
  const std::string url = "http://127.0.0.1:" + std::to_string(http_port) + "/";
  pid_t live = bitsweep::testing::Spawn(
      {"/usr/bin/env", "node", script, "--live", "1", "--node-modules", node_modules, "--url", url,
       "--token", kToken, "--sweep", std::to_string(sweep.sweep().id()), "--out", shots},
      dir + "/live.out");
  struct StopLive {
    pid_t pid;
    ~StopLive() {
      if (pid > 0) bitsweep::testing::Signal(pid, SIGTERM);
    }
  } stop_live{live};
  REQUIRE(bitsweep::testing::WaitForText(dir + "/live.out", "live: watching", 120));

  // A real worker runs the sweep (quantizes, evaluates, reports through the WorkerGateway).
  pid_t worker =
      bitsweep::testing::Spawn({bin + "/worker/bitsweep-worker", "--coordinator", addr, "--name",
                                "dash-worker", "--artifacts", dir + "/artifacts", "--data-dir",
                                bitsweep::testing::SourceDir() + "/models/demo/heldout",
                                "--poll-seconds", "0.2", "--threads", "1"},
                               dir + "/worker.log");
  struct StopWorker {
    pid_t pid;
    ~StopWorker() {
      if (pid > 0) bitsweep::testing::Signal(pid, SIGTERM);
    }
  } stop_worker{worker};
  pb::Sweep state;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(600);
  while (std::chrono::steady_clock::now() < deadline) {
    pb::GetSweepRequest get;
    get.set_sweep_id(sweep.sweep().id());
    REQUIRE_RPC_OK(client->GetSweep(Ctx().get(), get, &state));
    if (state.finished()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  INFO(Slurp(dir + "/worker.log"));
  REQUIRE(state.finished());
  REQUIRE(state.succeeded() == 14);
  int live_status = -1;
  for (int i = 0; i < 600 && live_status == -1; ++i) {
    int status = 0;
    if (waitpid(live, &status, WNOHANG) == live) {
      live_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  stop_live.pid = live_status == -1 ? live : -1;
  {
    INFO(Slurp(dir + "/live.out"));
    CHECK(live_status == 0);
  }
  // No worker from here on: the next sweep's new job stays pending until it is canceled.
  bitsweep::testing::Signal(worker, SIGTERM);
  stop_worker.pid = -1;

  WriteFile(dir + "/canceled.yaml", CanceledYaml(dir));
  pb::SubmitSweepRequest submit2;
  submit2.set_request_id("dashboard-e2e-2");
  submit2.set_sweep_yaml(CanceledYaml(dir));
  pb::SubmitSweepResponse sweep2;
  REQUIRE_RPC_OK(client->SubmitSweep(Ctx().get(), submit2, &sweep2));
  pb::CancelSweepRequest cancel;
  cancel.set_sweep_id(sweep2.sweep().id());
  pb::Sweep canceled;
  REQUIRE_RPC_OK(client->CancelSweep(Ctx().get(), cancel, &canceled));
  REQUIRE(canceled.canceled() == 1);

  // What the table must show: the headline metric of every job, as QueryResults returns it.
  pb::QueryResultsRequest query;
  query.set_sweep_id(sweep.sweep().id());
  pb::QueryResultsResponse results;
  REQUIRE_RPC_OK(client->QueryResults(Ctx().get(), query, &results));
  json cells = json::array();
  std::set<std::string> series;
  int64_t job_id = 0;                          // a quantized job, for the job page
  REQUIRE(results.next_page_token().empty());  // one page holds this small sweep
  for (const auto& job : results.jobs()) {
    for (const auto& metric : job.metrics()) {
      const json spec = json::parse(job.spec_json());
      const std::string method = spec["quant"]["method"];
      const int bits = spec["quant"]["wbits"];
      const bool ppl = metric.name() == "ppl";
      if (!ppl && metric.name() != "acc") continue;
      const int group = spec["quant"]["group_size"];
      const std::string g = group == -1 ? "" : " g" + std::to_string(group);
      if (method != "fp") {
        series.insert(method + g);
        job_id = job.job_id();
      }
      // 4 windows of the held-out text's many: the perplexity column is marked as a subset.
      const std::string task =
          spec["eval"]["task"] == "wikitext2" ? "wikitext2 ppl windows=4 (subset)" : "facts acc";
      // As the dashboard and `--percent` print them: accuracies in percent.
      char text[32];
      std::snprintf(text, sizeof(text), ppl ? "%.3f" : "%.2f",
                    ppl ? metric.value() : 100 * metric.value());
      cells.push_back({{"label", method == "fp" ? std::string("FP (baseline)")
                                                : method + " w" + std::to_string(bits) + g},
                       {"column", task},
                       {"value", metric.value()},
                       {"text", text}});
    }
  }
  REQUIRE(cells.size() == 14);
  WriteFile(dir + "/expected.json",
            json{{"cells", cells},
                 {"columns", json::array({"wikitext2 ppl windows=4 (subset)", "facts acc"})},
                 {"series", series.size()},
                 {"bits", json::array({2, 3, 4, 8})},
                 {"rows", 7},
                 {"jobs", 14}}
                .dump(2));

  // The same tables as one self-contained HTML file, through the CLI over gRPC.
  const std::string report = dir + "/report.html";
  REQUIRE(Run(bin + "/cli/bitsweep results " + std::to_string(sweep.sweep().id()) +
              " --format html --output " + report + " --coordinator " + addr + " --token " +
              kToken + " > " + dir + "/report.log 2>&1") == 0);
  // The text table pivots through the same code (common/results_table.h): same numbers.
  auto results_as = [&](const std::string& flags, const std::string& file) {
    REQUIRE(Run(bin + "/cli/bitsweep results " + std::to_string(sweep.sweep().id()) + " " + flags +
                " --output " + dir + "/" + file + " --coordinator " + addr + " --token " + kToken +
                " > " + dir + "/" + file + ".log 2>&1") == 0);
    return Slurp(dir + "/" + file);
  };
  const std::string table = results_as("--percent", "table.txt");
  INFO(table);
  CHECK(table.find("FP (baseline)") < table.find("rtn w3 g64"));
  CHECK(table.find("rtn w8 g64") < table.find("rtn w2 g64"));  // bits descending
  CHECK(table.find("\ndemo ") != std::string::npos);           // the model's name, not its path
  CHECK(table.find("vs FP") != std::string::npos);
  CHECK(table.find("stderr") != std::string::npos);  // the facts task has one
  CHECK(table.find(" \n") == std::string::npos);
  for (const auto& cell : cells) {
    CHECK(table.find(cell["text"].get<std::string>()) != std::string::npos);
  }
  const std::string csv = results_as("--format csv", "table.csv");
  INFO(csv);
  CHECK(csv.rfind("model,method,wbits,abits,group,quantization,", 0) == 0);
  CHECK(csv.find("\ndemo,rtn,8,16,64,rtn w8 g64,") != std::string::npos);
  const std::string latex = results_as("--format latex --percent", "table.tex");
  INFO(latex);
  CHECK(latex.find("\\toprule") != std::string::npos);
  CHECK(latex.find("facts acc (\\%)") != std::string::npos);
  const std::string html = Slurp(report);
  CHECK(html.find("<script src=") == std::string::npos);  // nothing loaded from elsewhere
  CHECK(html.find("uPlot") != std::string::npos);

  const std::string out = dir + "/dashboard.out";
  const int rc = Run("node " + script + " --node-modules " + node_modules + " --url " + url +
                     " --token " + kToken + " --sweep " + std::to_string(sweep.sweep().id()) +
                     " --canceled " + std::to_string(sweep2.sweep().id()) + " --job " +
                     std::to_string(job_id) + " --expected " + dir + "/expected.json --report " +
                     report + " --out " + shots + " > " + out + " 2>&1");
  std::cout << "dashboard screenshots: " << shots << "\n";
  INFO(Slurp(out));
  CHECK(rc == 0);
}
