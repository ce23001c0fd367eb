// `bitsweep report` (issue 18 item 4) end to end: a real coordinator over a real PostgreSQL holds
// a study-shaped sweep (the paper's nine tasks, FP, RTN and GPTQ at several widths) whose jobs a
// test worker completes over the WorkerGateway with known numbers and provenance, one failing
// and RTN w2's others skipped by early abort; a second sweep repeats GPTQ under another code
// version (a run_tag), and a third is a linear-type sensitivity sweep. The CLI
// writes their reports over gRPC, and report.mjs checks them in Debian's headless Chromium,
// offline: the paper's table (FP first, bold best), the SVG charts (the sensitivity bars among
// them) and the appendix show exactly the stored results.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
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

constexpr const char* kPaperTasks =
    "tasks: [wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, mmlu]\n";
// 6 recipes (FP, RTN w2/w4/w8, GPTQ w3/w4) x 9 tasks = 54 jobs.
const std::string kSweepA = std::string(R"(name: paper-a
models: [{path: /nonexistent/Qwen3-0.6B, name: Qwen3-0.6B}]
methods:
  - {method: rtn, wbits: [2, 4, 8], group: [128]}
  - {method: gptq, wbits: [3, 4], group: [128], calibration: {nsamples: 16, seed: 7}}
early_abort: {ppl_ratio: 3.0, on: wikitext2}
)") + kPaperTasks;
// Sweep A's GPTQ recipes again, the same calibration, under a new code version: its run_tag
// makes every job new (the FP baselines too), where without it A's results would answer them.
constexpr const char* kSweepB = R"(name: paper-b
run_tag: v-b
models: [{path: /nonexistent/Qwen3-0.6B, name: Qwen3-0.6B}]
methods:
  - {method: gptq, wbits: [3, 4], group: [128], calibration: {nsamples: 16, seed: 7}}
tasks: [wikitext2, piqa]
)";

// A linear-type sensitivity sweep (7 jobs, one per linear type at RTN w2, the rest FP); its FP
// job is sweep A's.
constexpr const char* kSweepSensitivity = R"(name: paper-sensitivity
models: [{path: /nonexistent/Qwen3-0.6B, name: Qwen3-0.6B}]
sensitivity: {method: rtn, wbits: 2, group: 128, unit: linear_type}
tasks: [wikitext2]
)";

const char* kTasks[] = {"wikitext2", "c4",         "piqa",  "arc_easy", "arc_challenge",
                        "hellaswag", "winogrande", "boolq", "mmlu"};

std::unique_ptr<grpc::ClientContext> Ctx() { return bitsweep::testing::RpcContext(""); }

int Run(const std::string& command) {
  const int s = std::system(command.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

// The result a job stores: perplexity grows as bits fall (RTN w2 diverges past the early_abort
// rule), accuracy falls. GPTQ w4 beats RTN w8 on every other task and loses on the rest, so the
// best quantized value sits in different rows; `shift` tells sweep B's GPTQ from sweep A's.
double Value(const json& spec, double shift) {
  const std::string method = spec["quant"]["method"];
  const int bits = spec["quant"]["wbits"];
  const std::string task = spec["eval"]["task"];
  int t = 0;
  while (task != kTasks[t]) ++t;
  // A sensitivity job (every linear FP but one type): a perplexity set by that type.
  if (spec["quant"].contains("overrides") && spec["quant"]["overrides"].size() == 2) {
    const std::string linear = spec["quant"]["overrides"][1].value("linear", "");
    return 10.0 + 0.25 * static_cast<double>(linear.size()) + (linear == "down_proj" ? 3.0 : 0.0);
  }
  const double loss = method == "fp"    ? 0
                      : method == "rtn" ? (16 - bits) * 0.9
                                        : (16 - bits) * 0.5 + (t % 2 == 1 ? 2.0 : 0.0) + shift;
  if (t < 2) return method == "rtn" && bits == 2 ? 4096.5 : 10.0 + t + loss * (t + 1) * 0.37;
  return 0.80 - 0.02 * t - loss * 0.011;
}

// Finishes one leased job: GPTQ w3's MMLU job fails for good; every other job completes with
// Value() and provenance naming `code_version`, the data file and the calibration.
void Finish(pb::WorkerGateway::Stub& gateway, int64_t worker_id, const pb::LeaseResponse& job,
            const std::string& code_version, double shift) {
  const json spec = json::parse(job.spec_json());
  const std::string task = spec["eval"]["task"];
  if (spec["quant"]["method"] == "gptq" && spec["quant"]["wbits"] == 3 && task == "mmlu") {
    pb::FailRequest fail;
    fail.set_worker_id(worker_id);
    fail.set_job_id(job.job_id());
    fail.set_lease_epoch(job.lease_epoch());
    fail.set_reason("mmlu: out of memory on the test worker");
    fail.set_retryable(false);
    pb::FailResponse failed;
    REQUIRE_RPC_OK(gateway.Fail(Ctx().get(), fail, &failed));
    return;
  }
  pb::CompleteRequest complete;
  complete.set_worker_id(worker_id);
  complete.set_job_id(job.job_id());
  complete.set_lease_epoch(job.lease_epoch());
  const bool ppl = task == "wikitext2" || task == "c4";
  auto* m = complete.add_metrics();
  m->set_name(ppl ? "ppl" : "acc");
  m->set_value(Value(spec, shift));
  m->set_stderr(ppl ? 0 : 0.012);
  m->set_n(ppl ? 40 : 500);
  json provenance = {
      {"code_version", code_version},
      {"checkpoint_digest", "digest-qwen3-0.6b"},
      {"worker", "w-report"},
      {"device", "cpu"},
      {"data_files", json::array({{{"path", task + "/data.jsonl"}, {"sha256", "sha-" + task}}})}};
  if (spec.contains("calibration") && spec["calibration"].is_object()) {
    provenance["calibration"] = spec["calibration"];
  }
  if (spec["quant"].contains("overrides")) provenance["avg_wbits"] = 14.25;  // a mixed recipe
  complete.set_provenance_json(provenance.dump());
  pb::CompleteResponse ok;
  REQUIRE_RPC_OK(gateway.Complete(Ctx().get(), complete, &ok));
}

// Leases and finishes every job it can get until the sweep is finished.
void RunJobs(pb::WorkerGateway::Stub& gateway, pb::Coordinator::Stub& client, int64_t sweep_id,
             const std::string& code_version, double shift) {
  pb::RegisterRequest reg;
  reg.set_name("w-report-" + code_version);
  reg.set_devices(1);
  reg.set_memory_gb(64);
  reg.set_max_tp(1);
  pb::RegisterResponse worker;
  REQUIRE_RPC_OK(gateway.Register(Ctx().get(), reg, &worker));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    // Everything leasable now, the baselines finished first: a quantized model's perplexity is
    // judged against its baseline's when it arrives (early abort).
    std::vector<pb::LeaseResponse> batch;
    while (true) {
      pb::LeaseRequest lease;
      lease.set_worker_id(worker.worker_id());
      pb::LeaseResponse job;
      REQUIRE_RPC_OK(gateway.Lease(Ctx().get(), lease, &job));
      if (!job.has_job()) break;
      batch.push_back(job);
    }
    std::stable_partition(batch.begin(), batch.end(), [](const pb::LeaseResponse& j) {
      return json::parse(j.spec_json())["quant"]["method"] == "fp";
    });
    for (const pb::LeaseResponse& job : batch) {
      Finish(gateway, worker.worker_id(), job, code_version, shift);
    }
    pb::GetSweepRequest get;
    get.set_sweep_id(sweep_id);
    pb::Sweep sweep;
    REQUIRE_RPC_OK(client.GetSweep(Ctx().get(), get, &sweep));
    if (sweep.finished()) return;
    if (batch.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL("sweep " << sweep_id << " did not finish");
}

int64_t Submit(pb::Coordinator::Stub& client, const std::string& id, const std::string& yaml) {
  pb::SubmitSweepRequest submit;
  submit.set_request_id(id);
  submit.set_sweep_yaml(yaml);
  pb::SubmitSweepResponse response;
  REQUIRE_RPC_OK(client.SubmitSweep(Ctx().get(), submit, &response));
  return response.sweep().id();
}

// Every stored result of the sweep, in one page (these sweeps are small).
pb::QueryResultsResponse StoredResults(pb::Coordinator::Stub& client, int64_t sweep_id) {
  pb::QueryResultsRequest query;
  query.set_sweep_id(sweep_id);
  query.set_page_size(1000);
  pb::QueryResultsResponse results;
  REQUIRE_RPC_OK(client.QueryResults(Ctx().get(), query, &results));
  REQUIRE(results.next_page_token().empty());
  return results;
}

// What the report must show of a sweep: every stored headline result by row label and column
// name (as QueryResults returns it), the skipped and failed jobs, and the best quantized value
// per column.
json Expected(pb::Coordinator::Stub& client, int64_t sweep_id) {
  const pb::QueryResultsResponse results = StoredResults(client, sweep_id);
  json cells = json::array();
  json skipped = json::array();
  std::map<std::string, double> best;
  for (const auto& job : results.jobs()) {
    const json spec = json::parse(job.spec_json());
    const std::string method = spec["quant"]["method"];
    const int bits = spec["quant"]["wbits"];
    const std::string task = spec["eval"]["task"];
    const bool ppl = task == "wikitext2" || task == "c4";
    const std::string label =
        method == "fp" ? "FP (baseline)" : method + " w" + std::to_string(bits) + " g128";
    const std::string column = task + (ppl ? " ppl" : " acc");
    if (!job.skipped_reason().empty()) {
      skipped.push_back({{"label", label}, {"column", column}, {"job_id", job.job_id()}});
      continue;
    }
    for (const auto& metric : job.metrics()) {
      char text[32];
      std::snprintf(text, sizeof(text), ppl ? "%.3f" : "%.2f",
                    ppl ? metric.value() : 100 * metric.value());
      cells.push_back({{"label", label},
                       {"column", column},
                       {"value", metric.value()},
                       {"text", text},
                       {"bits", bits},
                       {"method", method}});
      if (method == "fp") continue;
      auto [it, fresh] = best.try_emplace(column, metric.value());
      if (!fresh) {
        it->second =
            ppl ? std::min(it->second, metric.value()) : std::max(it->second, metric.value());
      }
    }
  }
  return {{"sweep", sweep_id}, {"cells", cells}, {"skipped", skipped}, {"best", best}};
}

// The sensitivity bars the report must draw: each unit's stored wikitext2 perplexity minus the
// FP baseline's, by unit, from QueryResults.
json ExpectedSensitivity(pb::Coordinator::Stub& client, int64_t sweep_id) {
  const pb::QueryResultsResponse results = StoredResults(client, sweep_id);
  double fp = 0;
  std::map<std::string, double> ppl;
  for (const auto& job : results.jobs()) {
    const json spec = json::parse(job.spec_json());
    REQUIRE(job.metrics_size() == 1);
    if (spec["quant"]["method"] == "fp") {
      fp = job.metrics(0).value();
    } else {
      ppl[spec["quant"]["overrides"][1]["linear"].get<std::string>()] = job.metrics(0).value();
    }
  }
  REQUIRE(ppl.size() == 7);
  json units = json::object();
  for (const auto& [unit, value] : ppl) units[unit] = value - fp;
  return {{"sweep", sweep_id}, {"column", "wikitext2 ppl"}, {"deltas", units}};
}

}  // namespace

TEST_CASE(
    "bitsweep report writes the paper's table, SVG charts with sensitivity bars, skipped and "
    "failed cells and the "
    "provenance of the stored results into one offline HTML file, and compares two sweeps",
    "[e2e][pg][grpc][browser]") {
  const std::string node_modules = BITSWEEP_PLAYWRIGHT_NODE_MODULES;
  if (!fs::exists(kChromium)) {
    WARN("skipped: " << kChromium << " is not installed (Debian package chromium)");
    return;
  }
  REQUIRE(fs::exists(node_modules + "/playwright-core/package.json"));
  const std::string dir = bitsweep::testing::ScratchDir("report_e2e");
  const std::string bin = bitsweep::testing::BinaryDir();

  bitsweep::server::ServerConfig config;
  config.db = bitsweep::testing::FreshDatabase();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.check_inputs = false;  // the model folder does not exist: no job runs a model here
  auto started = bitsweep::server::Coordinator::Start(config);
  REQUIRE(started.ok());
  const std::unique_ptr<bitsweep::server::Coordinator> coordinator = std::move(started).value();
  const std::string addr = "127.0.0.1:" + std::to_string(coordinator->port());
  auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto client = pb::Coordinator::NewStub(channel);
  auto gateway = pb::WorkerGateway::NewStub(channel);

  const int64_t a = Submit(*client, "report-a", kSweepA);
  RunJobs(*gateway, *client, a, "v-a", 0.0);
  const int64_t b = Submit(*client, "report-b", kSweepB);
  RunJobs(*gateway, *client, b, "v-b", 0.25);  // 12.3125: a tie, printed as C prints it
  const int64_t sens = Submit(*client, "report-sensitivity", kSweepSensitivity);
  RunJobs(*gateway, *client, sens, "v-a", 0.0);
  const json expected_a = Expected(*client, a);
  CHECK(expected_a["cells"].size() == 54 - 8 - 1);  // RTN w2's 8 others skipped, 1 failed
  CHECK(expected_a["skipped"].size() == 8);
  WriteFile(dir + "/expected.json", json{{"a", expected_a},
                                         {"b", Expected(*client, b)},
                                         {"failed",
                                          {{"label", "gptq w3 g128"},
                                           {"column", "mmlu acc"},
                                           {"reason", "mmlu: out of memory on the test worker"}}},
                                         {"code_versions", {"v-a", "v-b"}},
                                         {"sensitivity", ExpectedSensitivity(*client, sens)},
                                         {"rows", 6}}
                                        .dump(2));

  auto report = [&](const std::string& args, const std::string& file) {
    const int rc = Run(bin + "/cli/bitsweep report " + args + " --out " + dir + "/" + file +
                       " --coordinator " + addr + " > " + dir + "/" + file + ".log 2>&1");
    INFO(Slurp(dir + "/" + file + ".log"));
    REQUIRE(rc == 0);
    return Slurp(dir + "/" + file);
  };
  const std::string html = report(std::to_string(a), "report.html");
  const std::string compare =
      report(std::to_string(a) + " --compare " + std::to_string(b), "compare.html");
  report(std::to_string(sens), "sensitivity.html");
  // Self-contained: nothing refers to a file or address outside it.
  for (const std::string& page : {html, compare}) {
    CHECK(page.find("<script src") == std::string::npos);
    CHECK(page.find("<link") == std::string::npos);
    CHECK(page.find("src=\"http") == std::string::npos);
    CHECK(page.find("href=\"http") == std::string::npos);
    CHECK(page.find("@import") == std::string::npos);
    CHECK(page.find("url(") == std::string::npos);
  }

  // A sweep with nothing stored yet: the report is written, and the exit code says so (4).
  const int64_t empty = Submit(*client, "report-empty", std::string(R"(name: empty
models: [/nonexistent/other]
methods: [{method: rtn, wbits: [4]}]
tasks: [wikitext2]
)"));
  CHECK(Run(bin + "/cli/bitsweep report " + std::to_string(empty) + " --out " + dir +
            "/empty.html --coordinator " + addr + " > " + dir + "/empty.log 2>&1") == 4);
  CHECK(Slurp(dir + "/empty.log").find("no results for sweep") != std::string::npos);
  CHECK(Slurp(dir + "/empty.html").find("bitsweep report: sweep") != std::string::npos);

  const std::string shots = bin + "/report-screenshots";
  fs::remove_all(shots);
  const std::string script = bitsweep::testing::SourceDir() + "/tests/dashboard/report.mjs";
  const std::string out = dir + "/report.out";
  const int rc = Run("node " + script + " --node-modules " + node_modules + " --report " + dir +
                     "/report.html --compare " + dir + "/compare.html --sensitivity " + dir +
                     "/sensitivity.html --expected " + dir +
                     "/expected.json --out " + shots + " > " + out + " 2>&1");
  std::cout << "report screenshots: " << shots << "\n";
  INFO(Slurp(out));
  CHECK(rc == 0);
}
