// The dashboard's JSON API (server/http_api) on a real coordinator and a real PostgreSQL: jobs
// are completed through the WorkerGateway over loopback gRPC, then read back over HTTP.
#include "server/http_api.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

using nlohmann::json;

// fp, rtn w3 and rtn w4 (group 64) of one model on wikitext2: 3 jobs. The model need not exist.
constexpr const char* kSweepYaml = R"(name: dash
models: [/nonexistent/qwen3-tiny]
methods:
  - {method: rtn, wbits: [3, 4], group: [64]}
tasks: [wikitext2]
)";
constexpr const char* kOtherYaml = R"(name: other
models: [/nonexistent/qwen3-tiny]
methods:
  - {method: gptq, wbits: [2], group: [64]}
tasks: [wikitext2]
)";

struct Running {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<v1::Coordinator::Stub> client;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
  std::unique_ptr<httplib::Client> http;
  std::string token;
};

Running Start(const std::string& token, const std::string& viewer_token = "") {
  ServerConfig config;
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = testing::FreshDatabase();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.http_listen = "127.0.0.1:0";
  config.client_token = token;
  config.viewer_token = viewer_token;
  auto started = Coordinator::Start(config);
  if (!started.ok()) FAIL("Coordinator::Start: " << started.status().ToString());
  Running r;
  r.coordinator = std::move(started).value();
  REQUIRE(r.coordinator->http_port() > 0);
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(r.coordinator->port()),
                                     grpc::InsecureChannelCredentials());
  r.client = v1::Coordinator::NewStub(channel);
  r.worker = v1::WorkerGateway::NewStub(channel);
  r.http = std::make_unique<httplib::Client>("127.0.0.1", r.coordinator->http_port());
  r.http->set_read_timeout(20, 0);
  r.token = token;
  return r;
}

std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
  return testing::RpcContext(token);
}

int64_t Submit(Running& r, const std::string& request_id, const std::string& yaml) {
  v1::SubmitSweepRequest req;
  req.set_request_id(request_id);
  req.set_sweep_yaml(yaml);
  v1::SubmitSweepResponse resp;
  REQUIRE_RPC_OK(r.client->SubmitSweep(Ctx(r.token).get(), req, &resp));
  return resp.sweep().id();
}

// A job's result as the test worker reports it: ppl and the provenance JSON.
using Outcome = std::function<std::pair<double, std::string>(const json& spec)>;

// ppl = 10 + 8 - wbits (the baseline 10, rtn w4 14, rtn w3 15).
std::pair<double, std::string> ByBits(const json& spec) {
  const int wbits = spec["quant"]["wbits"].get<int>();
  return {spec["quant"]["method"] == "fp" ? 10.0 : 10.0 + 8 - wbits,
          R"({"code_version": "http-test", "worker": "w-http"})"};
}

// Leases every pending job as worker "w-http" and completes it with `outcome`'s ppl and
// provenance. Returns job id -> ppl.
std::map<int64_t, double> RunAll(Running& r, const Outcome& outcome = ByBits) {
  v1::RegisterRequest reg;
  reg.set_name("w-http");
  reg.set_devices(1);
  reg.set_memory_gb(64);
  reg.set_max_tp(1);
  v1::RegisterResponse worker;
  REQUIRE_RPC_OK(r.worker->Register(Ctx("").get(), reg, &worker));
  std::map<int64_t, double> done;
  while (true) {
    v1::LeaseRequest lease;
    lease.set_worker_id(worker.worker_id());
    v1::LeaseResponse job;
    REQUIRE_RPC_OK(r.worker->Lease(Ctx("").get(), lease, &job));
    if (!job.has_job()) break;
    const auto [ppl, provenance] = outcome(json::parse(job.spec_json()));
    v1::CompleteRequest complete;
    complete.set_worker_id(worker.worker_id());
    complete.set_job_id(job.job_id());
    complete.set_lease_epoch(job.lease_epoch());
    auto* m = complete.add_metrics();
    m->set_name("ppl");
    m->set_value(ppl);
    m->set_n(8);
    complete.set_provenance_json(provenance);
    v1::CompleteResponse ok;
    REQUIRE_RPC_OK(r.worker->Complete(Ctx("").get(), complete, &ok));
    done[job.job_id()] = ppl;
  }
  return done;
}

// kSweepYaml submitted and run to the end (its 3 jobs' ppl by job id), then kOtherYaml submitted.
struct DashThenOther {
  int64_t sweep = 0;
  std::map<int64_t, double> done;
  int64_t other = 0;
};
DashThenOther RunDashThenSubmitOther(Running& r) {
  DashThenOther out;
  out.sweep = Submit(r, "dash-1", kSweepYaml);
  out.done = RunAll(r);
  REQUIRE(out.done.size() == 3);
  out.other = Submit(r, "dash-2", kOtherYaml);
  return out;
}

json GetJson(Running& r, const std::string& path, int want_status = 200) {
  httplib::Headers headers;
  if (!r.token.empty()) headers.emplace("Authorization", "Bearer " + r.token);
  auto res = r.http->Get(path.c_str(), headers);
  REQUIRE(res);
  INFO(path << " -> " << res->status << " " << res->body);
  REQUIRE(res->status == want_status);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  return json::parse(res->body);
}

TEST_CASE("the dashboard API answers 401 without the client token and JSON with it",
          "[pg][grpc][http]") {
  Running r = Start("s3cret");
  Submit(r, "auth-1", kSweepYaml);
  auto none = r.http->Get("/api/sweeps");
  REQUIRE(none);
  CHECK(none->status == 401);
  CHECK(json::parse(none->body).contains("error"));
  auto wrong = r.http->Get("/api/sweeps", {{"Authorization", "Bearer s3cre"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  auto not_bearer = r.http->Get("/api/results", {{"Authorization", "s3cret"}});
  REQUIRE(not_bearer);
  CHECK(not_bearer->status == 401);
  json sweeps = GetJson(r, "/api/sweeps");
  REQUIRE(sweeps["sweeps"].size() == 1);
  CHECK(sweeps["sweeps"][0]["name"] == "dash");
  // The page itself holds no data and loads without the token (it asks for it).
  auto page = r.http->Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body.find("/assets/app.js") != std::string::npos);
  auto chart = r.http->Get("/assets/uPlot.iife.min.js");
  REQUIRE(chart);
  CHECK(chart->status == 200);
  CHECK(chart->body.find("uPlot") != std::string::npos);
  CHECK(r.http->Get("/assets/nope.js")->status == 404);
}

TEST_CASE("the dashboard API, which only reads, takes the viewer token as well as the client "
          "token",
          "[pg][grpc][http]") {
  Running r = Start("s3cret", "look-only");
  Submit(r, "viewer-1", kSweepYaml);
  auto viewed = r.http->Get("/api/sweeps", {{"Authorization", "Bearer look-only"}});
  REQUIRE(viewed);
  CHECK(viewed->status == 200);
  CHECK(json::parse(viewed->body)["sweeps"].size() == 1);
  auto wrong = r.http->Get("/api/sweeps", {{"Authorization", "Bearer look-onl"}});
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
}

TEST_CASE(
    "the dashboard API returns sweeps with counts, a sweep's jobs, the pivoted results and a "
    "job's events and provenance",
    "[pg][grpc][http]") {
  Running r = Start("");
  const auto [sweep, done, other] = RunDashThenSubmitOther(r);
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(other);
  v1::Sweep canceled;
  REQUIRE_RPC_OK(r.client->CancelSweep(Ctx("").get(), cancel, &canceled));

  json sweeps = GetJson(r, "/api/sweeps")["sweeps"];
  REQUIRE(sweeps.size() == 2);
  CHECK(sweeps[0]["id"] == other);  // newest first
  CHECK(sweeps[0]["state"] == "CANCELED");
  CHECK(sweeps[0]["canceled"] == 1);
  CHECK(sweeps[0]["succeeded"] == 1);
  CHECK(sweeps[0]["finished"] == true);
  CHECK(sweeps[1]["state"] == "ACTIVE");
  CHECK(sweeps[1]["succeeded"] == 3);
  CHECK(sweeps[1]["total"] == 3);
  CHECK(sweeps[1]["finished"] == true);

  json detail = GetJson(r, "/api/sweeps/" + std::to_string(sweep));
  CHECK(detail["sweep"]["name"] == "dash");
  REQUIRE(detail["jobs"].size() == 3);
  for (const auto& job : detail["jobs"]) {
    CHECK(job["state"] == "SUCCEEDED");
    CHECK(job["worker"] == "w-http");
    CHECK(job["task"] == "wikitext2");
    CHECK(job["progress"] == 1.0);
  }

  json results = GetJson(r, "/api/results/table?sweep=" + std::to_string(sweep));
  const json& table = results["table"];
  REQUIRE(table["columns"].size() == 1);
  CHECK(table["columns"][0]["name"] == "wikitext2 ppl");
  REQUIRE(table["rows"].size() == 3);
  CHECK(table["rows"][0]["baseline"] == true);
  CHECK(table["rows"][1]["label"] == "rtn w4 g64");  // bits descending within a method
  CHECK(table["rows"][2]["label"] == "rtn w3 g64");
  CHECK(table["rows"][1]["cells"]["wikitext2 ppl"]["delta"].is_number());
  CHECK(table["rows"][0]["cells"]["wikitext2 ppl"]["delta"].is_null());
  for (const auto& row : table["rows"]) {
    const auto& cell = row["cells"]["wikitext2 ppl"];
    CHECK(cell["value"].get<double>() == done.at(cell["job_id"].get<int64_t>()));
  }
  const json listed = GetJson(r, "/api/results?sweep=" + std::to_string(sweep));
  REQUIRE(listed["jobs"].size() == 3);
  CHECK(listed["next_page_token"] == "");
  for (const auto& job : listed["jobs"]) {
    REQUIRE(job["metrics"].size() == 1);
    CHECK(job["metrics"][0]["value"].get<double>() == done.at(job["job_id"].get<int64_t>()));
    CHECK(job["provenance"]["code_version"] == "http-test");
  }
  // Every sweep's results when no sweep is named; the canceled sweep shares only the baseline,
  // which had already succeeded.
  CHECK(GetJson(r, "/api/results/table")["table"]["rows"].size() == 3);
  const json shared =
      GetJson(r, "/api/results/table?sweep=" + std::to_string(other))["table"]["rows"];
  REQUIRE(shared.size() == 1);
  CHECK(shared[0]["baseline"] == true);

  const int64_t job_id = done.begin()->first;
  json job = GetJson(r, "/api/jobs/" + std::to_string(job_id));
  CHECK(job["job"]["id"] == job_id);
  CHECK(job["job"]["sweep_id"] == sweep);
  REQUIRE(job["events"].size() == 3);
  CHECK(job["events"][0]["event"] == "SUBMIT");
  CHECK(job["events"][0]["from"].is_null());
  CHECK(job["events"][1]["event"] == "LEASE");
  CHECK(job["events"][1]["worker"] == "w-http");
  CHECK(job["events"][2]["to"] == "SUCCEEDED");
  CHECK(job["events"][2]["at"].get<double>() >= job["events"][0]["at"].get<double>());
  REQUIRE(job["results"].size() == 1);
  CHECK(job["results"][0]["value"].get<double>() == done.at(job_id));
  CHECK(job["results"][0]["provenance"]["code_version"] == "http-test");

  CHECK(GetJson(r, "/api/jobs/999999", 404).contains("error"));
  CHECK(GetJson(r, "/api/sweeps/999999", 404).contains("error"));
  CHECK(GetJson(r, "/api/results?sweep=x", 400).contains("error"));
}

TEST_CASE(
    "the dashboard API pages sweeps, a sweep's jobs and results with page tokens, and "
    "refuses a token of another listing with 400",
    "[pg][grpc][http]") {
  Running r = Start("");
  const auto [sweep, done, other] = RunDashThenSubmitOther(r);

  // Sweeps, newest first, one per page.
  json first = GetJson(r, "/api/sweeps?page_size=1");
  REQUIRE(first["sweeps"].size() == 1);
  CHECK(first["sweeps"][0]["id"] == other);
  const std::string token = first["next_page_token"];
  REQUIRE_FALSE(token.empty());
  json second = GetJson(r, "/api/sweeps?page_size=1&page_token=" + token);
  REQUIRE(second["sweeps"].size() == 1);
  CHECK(second["sweeps"][0]["id"] == sweep);
  CHECK(second["next_page_token"] == "");

  // A sweep's jobs and its results, two per page: every job once, in id order.
  for (const std::string& listing :
       {"/api/sweeps/" + std::to_string(sweep) + "?page_size=2",
        "/api/results?sweep=" + std::to_string(sweep) + "&page_size=2"}) {
    std::vector<int64_t> ids;
    std::string next;
    int pages = 0;
    do {
      json page = GetJson(r, listing + (next.empty() ? "" : "&page_token=" + next));
      ++pages;
      for (const auto& job : page["jobs"]) {
        ids.push_back(job.contains("id") ? job["id"].get<int64_t>() : job["job_id"].get<int64_t>());
      }
      next = page["next_page_token"];
    } while (!next.empty());
    CHECK(pages == 2);
    REQUIRE(ids.size() == done.size());
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    for (int64_t id : ids) CHECK(done.count(id) == 1);
  }

  // A sweeps token on the jobs listing, a page size that is not a number.
  CHECK_THAT(
      GetJson(r, "/api/sweeps/" + std::to_string(sweep) + "?page_token=" + token, 400)["error"]
          .get<std::string>(),
      Catch::Contains("not a page token of this listing (jobs)"));
  CHECK(GetJson(r, "/api/results?page_size=many", 400)["error"] == "page_size: not an integer");
}

// The researcher's two cases, through the store and the dashboard API: (1) a second sweep's FP
// baseline on the whole WikiText-2 at 2048 (7.221) must not replace the first sweep's on 8
// windows of 256 (6.061), under which the quantized rows are worse than FP; (2) GPTQ w3 with
// calibration nsamples 4 (6.094) and 32 (6.038) in one sweep are two rows.
TEST_CASE("stored results of different settings never share a cell in the dashboard's table",
          "[pg][grpc][http]") {
  Running r = Start("");
  const int64_t small = Submit(r, "settings-1", R"(name: small
models: [/nonexistent/qwen3-tiny]
methods:
  - {method: rtn, wbits: [4], group: [64]}
  - {method: gptq, wbits: [3], group: [64], calibration: {nsamples: 4}}
  - {method: gptq, wbits: [3], group: [64], calibration: {nsamples: 32}}
tasks: [{task: wikitext2, limit: 8}]
eval: {seqlen: 256}
)");
  // The worker's provenance says how much of the stream (281,600 tokens) was scored.
  auto outcome = [](const json& spec) -> std::pair<double, std::string> {
    const int64_t seqlen = spec["eval"]["seqlen"].get<int64_t>();
    const int64_t windows = spec["eval"]["limit"].get<int64_t>() > 0 ? 8 : 281600 / seqlen;
    const std::string provenance =
        json{{"eval", {{"windows", windows}, {"stream_tokens", 281600}, {"seqlen", seqlen}}}}
            .dump();
    const std::string method = spec["quant"]["method"];
    if (method == "fp") return {seqlen == 256 ? 6.061 : 7.221, provenance};
    if (method == "rtn") return {6.5, provenance};
    return {spec["calibration"]["nsamples"] == 4 ? 6.094 : 6.038, provenance};
  };
  REQUIRE(RunAll(r, outcome).size() == 4);
  Submit(r, "settings-2", R"(name: full
models: [/nonexistent/qwen3-tiny]
methods: []
tasks: [wikitext2]
)");
  REQUIRE(RunAll(r, outcome).size() == 1);

  const json table = GetJson(r, "/api/results/table")["table"];  // every sweep
  INFO(table.dump(1));
  REQUIRE(table["columns"].size() == 2);
  const std::string subset = table["columns"][0]["name"];
  const std::string whole = table["columns"][1]["name"];
  CHECK(subset == "wikitext2 ppl seqlen=256 windows=8 (subset)");
  CHECK(table["columns"][0]["subset"] == true);
  CHECK(whole == "wikitext2 ppl seqlen=2048 windows=all");
  CHECK(table["columns"][1]["subset"] == false);
  std::map<std::string, json> rows;
  for (const json& row : table["rows"]) rows[row["label"]] = row["cells"];
  REQUIRE(rows.size() == 4);
  CHECK(rows.at("FP (baseline)")[subset]["value"].get<double>() == 6.061);
  CHECK(rows.at("FP (baseline)")[whole]["value"].get<double>() == 7.221);
  CHECK(rows.at("rtn w4 g64").size() == 1);
  CHECK(rows.at("rtn w4 g64")[subset]["value"].get<double>() == 6.5);
  CHECK(rows.at("gptq w3 g64 nsamples=4")[subset]["value"].get<double>() == 6.094);
  CHECK(rows.at("gptq w3 g64 nsamples=32")[subset]["value"].get<double>() == 6.038);
  // Only the first sweep's results when it is named: its own columns and rows.
  const json own = GetJson(r, "/api/results/table?sweep=" + std::to_string(small))["table"];
  CHECK(own["columns"].size() == 1);
  CHECK(own["rows"].size() == 4);
}

TEST_CASE(
    "a sweep's model names come back with its results and name the rows of the dashboard's "
    "table, a later sweep's name for a folder replacing an earlier one across sweeps",
    "[pg][grpc][http]") {
  Running r = Start("");
  const int64_t first = Submit(r, "names-1", R"(name: named
models:
  - {path: /nonexistent/qwen3-tiny, name: tiny base}
  - /nonexistent/other
methods: []
tasks: [wikitext2]
)");
  REQUIRE(RunAll(r).size() == 2);
  auto names_of = [&](int64_t sweep) {
    v1::QueryResultsRequest q;
    q.set_sweep_id(sweep);
    v1::QueryResultsResponse results;
    REQUIRE_RPC_OK(r.client->QueryResults(Ctx("").get(), q, &results));
    return std::map<std::string, std::string>(results.model_names().begin(),
                                              results.model_names().end());
  };
  const std::map<std::string, std::string> named = {{"/nonexistent/qwen3-tiny", "tiny base"}};
  CHECK(names_of(first) == named);
  CHECK(names_of(0) == named);
  auto model_names = [&](const std::string& query) {
    std::map<std::string, std::string> by_folder;
    const json table = GetJson(r, "/api/results/table" + query)["table"];
    for (const json& row : table["rows"]) {
      by_folder[row["model"]] = row["model_name"];
    }
    return by_folder;
  };
  const std::map<std::string, std::string> shown = {
      {"/nonexistent/qwen3-tiny", "tiny base"}, {"/nonexistent/other", "other"}};
  CHECK(model_names("") == shown);
  CHECK(model_names("?sweep=" + std::to_string(first)) == shown);

  // The same folder named again by a second sweep, whose job is the stored one (reused).
  const int64_t second = Submit(r, "names-2", R"(name: renamed
models: [{path: /nonexistent/qwen3-tiny, name: tiny v2}]
methods: []
tasks: [wikitext2]
)");
  CHECK(RunAll(r).empty());
  const std::map<std::string, std::string> renamed = {{"/nonexistent/qwen3-tiny", "tiny v2"}};
  CHECK(names_of(second) == renamed);
  CHECK(names_of(0) == renamed);
  CHECK(model_names("?sweep=" + std::to_string(second)) == renamed);
  CHECK(model_names("?sweep=" + std::to_string(first)) == shown);  // its own names
  CHECK(model_names("").at("/nonexistent/qwen3-tiny") == "tiny v2");
}

TEST_CASE("with TLS configured the dashboard is served over HTTPS with the gRPC certificate",
          "[pg][grpc][http]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl command is not installed");
    return;
  }
  const std::string dir = testing::ScratchDir("server-http-tls");
  const std::string make =
      "cd '" + dir +
      "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
      "server.key -out server.pem -days 2 -subj /CN=localhost -addext "
      "subjectAltName=DNS:localhost,IP:127.0.0.1 > openssl.log 2>&1";
  REQUIRE(std::system(make.c_str()) == 0);
  ServerConfig config;
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = testing::FreshDatabase();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.http_listen = "127.0.0.1:0";
  config.client_token = "tls-token";
  config.tls_cert = dir + "/server.pem";
  config.tls_key = dir + "/server.key";
  auto coordinator = Coordinator::Start(config);
  INFO(coordinator.status().ToString());
  REQUIRE(coordinator.ok());
  const int port = (*coordinator)->http_port();

  httplib::SSLClient https("127.0.0.1", port);
  https.set_ca_cert_path((dir + "/server.pem").c_str());
  https.enable_server_certificate_verification(true);
  https.set_read_timeout(20, 0);
  auto res = https.Get("/api/sweeps", {{"Authorization", "Bearer tls-token"}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(json::parse(res->body)["sweeps"].empty());
  auto unauthenticated = https.Get("/api/sweeps");
  REQUIRE(unauthenticated);
  CHECK(unauthenticated->status == 401);
  // Plain HTTP gets no answer from the TLS port.
  httplib::Client plain("127.0.0.1", port);
  plain.set_read_timeout(5, 0);
  auto refused = plain.Get("/api/sweeps", {{"Authorization", "Bearer tls-token"}});
  CHECK((!refused || refused->status != 200));
}

}  // namespace
}  // namespace bitsweep::server
