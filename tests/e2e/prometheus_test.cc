// Metrics on the real system: a coordinator and a worker serve /metrics, a real Prometheus
// server (the Debian package) scrapes both while a tiny sweep runs, and its query API reports
// the jobs each of them saw; with TLS, both are scraped over HTTPS.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "store/local_postgres.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;
using Clock = std::chrono::steady_clock;

const char kPrometheus[] = "/usr/bin/prometheus";
const char kPromtool[] = "/usr/bin/promtool";

void Stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
}

int Run(const std::string& command) {
  const int s = std::system(command.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

int Cli(const std::string& args, const std::string& out) {
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  return Run(bin + " " + args + " > " + out + " 2>> " + out + ".err");
}

// The value of an instant query that yields exactly one sample; nullopt otherwise.
std::optional<double> Query(const std::string& prometheus, const std::string& expr,
                            const std::string& out) {
  if (Run("curl -sfG 'http://" + prometheus + "/api/v1/query' --data-urlencode 'query=" + expr +
          "' > " + out + " 2>/dev/null") != 0) {
    return std::nullopt;
  }
  const auto j = nlohmann::json::parse(Slurp(out), nullptr, false);
  if (!j.is_object() || j.value("status", "") != "success") return std::nullopt;
  const auto& result = j["data"]["result"];
  if (!result.is_array() || result.size() != 1) return std::nullopt;
  return std::stod(result[0]["value"][1].get<std::string>());
}

// Polls `expr` until it equals `want` (Prometheus scrapes every second).
std::optional<double> WaitForValue(const std::string& prometheus, const std::string& expr,
                                   double want, const std::string& out, int seconds) {
  std::optional<double> v;
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < end) {
    v = Query(prometheus, expr, out);
    if (v && *v == want) return v;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return v;
}

// promtool's lint of an exposition file (names, help, types), when promtool is installed.
void CheckLint(const std::string& metrics_file, const std::string& dir) {
  if (!fs::exists(kPromtool)) return;
  CHECK(Run(std::string(kPromtool) + " check metrics < " + metrics_file + " > " + dir +
            "/promtool.out 2>&1") == 0);
  INFO(Slurp(dir + "/promtool.out"));
}

// Starts Prometheus on `listen` with `scrape_configs` (YAML list items) scraping every second.
pid_t StartPrometheus(const std::string& dir, const std::string& listen,
                      const std::string& scrape_configs) {
  WriteFile(dir + "/prometheus.yml",
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" +
                scrape_configs);
  return bitsweep::testing::Spawn(
      {kPrometheus, "--config.file=" + dir + "/prometheus.yml",
       "--storage.tsdb.path=" + dir + "/tsdb", "--web.listen-address=" + listen},
      dir + "/prometheus.log");
}

// Stops every process started by the test at its end, also when a REQUIRE fails.
struct StopAtEnd {
  std::vector<pid_t*> pids;
  ~StopAtEnd() {
    for (pid_t* p : pids) Stop(*p);
  }
};

}  // namespace

TEST_CASE(
    "A real Prometheus server scrapes the coordinator and a worker and reports the jobs of a "
    "finished sweep",
    "[e2e][pg][grpc][prometheus]") {
  if (!fs::exists(kPrometheus)) {
    WARN("skipped: " << kPrometheus << " is not installed (Debian package prometheus)");
    return;
  }
  const std::string dir = bitsweep::testing::ScratchDir("e2e_prometheus");
  const std::string bin = bitsweep::testing::BinaryDir();
  REQUIRE(Cli("make-tiny-model --out " + dir + "/model --seed 9", dir + "/make") == 0);
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"The cat number one sat on the\", \"choices\": [\"mat\", \"dog\"], "
            "\"gold\": 0}\n");
  // rtn w4 g16 and the fp baseline on one task: two jobs.
  WriteFile(dir + "/sweep.yaml", "name: prom\nmodels: [" + dir +
                                     "/model]\n"
                                     "methods:\n  - {method: [rtn], wbits: [4], group: [16]}\n"
                                     "tasks: [" +
                                     dir + "/facts.jsonl]\n");

  auto pg = bitsweep::testing::StartPostgres(dir);
  auto db = pg->CreateDatabase("prom");
  REQUIRE(db.ok());

  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string coord_metrics = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string worker_metrics = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string prom = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  pid_t coord =
      bitsweep::testing::Spawn({bin + "/server/bitsweep-coordinator", "--listen", addr, "--db", *db,
                                "--metrics-listen", coord_metrics, "--http-listen", ""},
                               dir + "/coordinator.log");
  pid_t worker = bitsweep::testing::Spawn(
      {bin + "/worker/bitsweep-worker", "--coordinator", addr, "--name", "w0", "--artifacts",
       dir + "/artifacts", "--data-dir", dir + "/data", "--poll-seconds", "0.2", "--threads", "1",
       "--metrics-listen", worker_metrics},
      dir + "/worker.log");
  pid_t prometheus = -1;
  StopAtEnd cleanup{{&prometheus, &worker, &coord}};

  REQUIRE(Cli("submit " + dir + "/sweep.yaml --coordinator " + addr, dir + "/submit") == 0);
  INFO(Slurp(dir + "/submit"));
  REQUIRE(Cli("watch 1 --coordinator " + addr, dir + "/watch") == 0);

  // The worker's exposition is valid Prometheus text (promtool lints names, help and types).
  REQUIRE(Run("curl -sf http://" + worker_metrics + "/metrics > " + dir + "/worker.metrics") == 0);
  const std::string text = Slurp(dir + "/worker.metrics");
  INFO(text);
  CHECK(text.find("bitsweep_worker_info{version=") != std::string::npos);
  CHECK(text.find("bitsweep_worker_busy 0") != std::string::npos);
  CHECK(text.find("bitsweep_worker_jobs_total{method=\"rtn\",outcome=\"succeeded\",task_kind="
                  "\"multiple_choice\"} 1") != std::string::npos);
  CHECK(text.find("bitsweep_worker_artifact_cache_total{result=\"miss\"}") != std::string::npos);
  CheckLint(dir + "/worker.metrics", dir);

  prometheus = StartPrometheus(dir, prom,
                               "  - job_name: coordinator\n"
                               "    static_configs: [{targets: ['" +
                                   coord_metrics +
                                   "']}]\n"
                                   "  - job_name: worker\n"
                                   "    static_configs: [{targets: ['" +
                                   worker_metrics + "']}]\n");
  const std::string q = dir + "/query.json";
  CHECK(WaitForValue(prom, "up{job=\"coordinator\"}", 1, q, 60).value_or(-1) == 1);
  CHECK(WaitForValue(prom, "up{job=\"worker\"}", 1, q, 30).value_or(-1) == 1);
  // The coordinator counts the jobs in PostgreSQL; the worker counts the jobs it ran.
  CHECK(WaitForValue(prom, "bitsweep_jobs{state=\"succeeded\"}", 2, q, 30).value_or(-1) == 2);
  CHECK(WaitForValue(prom, "sum(bitsweep_worker_jobs_total{outcome=\"succeeded\"})", 2, q, 30)
            .value_or(-1) == 2);
  CHECK(WaitForValue(prom, "sum(bitsweep_worker_jobs_total)", 2, q, 30).value_or(-1) == 2);
  CHECK(WaitForValue(prom,
                     "sum(bitsweep_worker_job_duration_seconds_count{method=\"rtn\","
                     "task_kind=\"multiple_choice\"})",
                     1, q, 30)
            .value_or(-1) == 1);
}

TEST_CASE("With TLS on, the coordinator serves /metrics as HTTPS with its certificate, a worker "
          "serves its own with client certificates required, and a real Prometheus scrapes both "
          "over TLS",
          "[e2e][pg][prometheus][tls]") {
  if (!fs::exists(kPrometheus) || Run("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: needs " << kPrometheus << " and the openssl command");
    return;
  }
  const std::string dir = bitsweep::testing::ScratchDir("e2e_prometheus_tls");
  REQUIRE(Run("cd '" + dir +
              "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout server.key -out server.pem -days 2 -subj /CN=localhost -addext "
              "subjectAltName=DNS:localhost,IP:127.0.0.1 > openssl.log 2>&1") == 0);
  auto pg = bitsweep::testing::StartPostgres(dir);
  auto db = pg->CreateDatabase("promtls");
  REQUIRE(db.ok());
  const std::string bin = bitsweep::testing::BinaryDir();
  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string metrics = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string prom = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  pid_t coord = bitsweep::testing::Spawn(
      {bin + "/server/bitsweep-coordinator", "--listen", addr, "--db", *db, "--metrics-listen",
       metrics, "--http-listen", "", "--tls-cert", dir + "/server.pem", "--tls-key",
       dir + "/server.key"},
      dir + "/coordinator.log");
  // The worker's /metrics: HTTPS with a server certificate, requiring a client certificate
  // signed by --metrics-tls-ca (the self-signed one here is its own CA, and Prometheus's).
  const std::string worker_metrics = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  pid_t worker = bitsweep::testing::Spawn(
      {bin + "/worker/bitsweep-worker", "--coordinator", addr, "--tls-ca", dir + "/server.pem",
       "--name", "w0", "--artifacts", dir + "/artifacts", "--state-dir", dir + "/worker-state",
       "--threads", "1", "--metrics-listen", worker_metrics, "--metrics-tls-cert",
       dir + "/server.pem", "--metrics-tls-key", dir + "/server.key", "--metrics-tls-ca",
       dir + "/server.pem"},
      dir + "/worker.log");
  pid_t prometheus = -1;
  StopAtEnd cleanup{{&prometheus, &worker, &coord}};

  // Verified against the certificate; plain HTTP gets no exposition from the TLS port.
  const std::string out = dir + "/coordinator.metrics";
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = Run("curl -sf --cacert " + dir + "/server.pem https://" + metrics + "/metrics > " +
                 out + " 2>/dev/null") == 0;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO(Slurp(dir + "/coordinator.log"));
  REQUIRE(served);
  CHECK(Slurp(out).find("bitsweep_store_up 1") != std::string::npos);
  CHECK(Run("curl -sf --max-time 5 http://" + metrics + "/metrics > /dev/null 2>&1") != 0);
  CheckLint(out, dir);

  // The worker's: only with a client certificate; none, or plain HTTP, gets no exposition.
  const std::string curl_worker = "curl -sf --max-time 5 --cacert " + dir + "/server.pem ";
  const std::string wout = dir + "/worker.metrics";
  const std::string client_cert = "--cert " + dir + "/server.pem --key " + dir + "/server.key ";
  served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = Run(curl_worker + client_cert + "https://" + worker_metrics + "/metrics > " + wout +
                 " 2>/dev/null") == 0;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO(Slurp(dir + "/worker.log"));
  REQUIRE(served);
  CHECK(Slurp(wout).find("bitsweep_worker_info{version=") != std::string::npos);
  CHECK(Run(curl_worker + "https://" + worker_metrics + "/metrics > /dev/null 2>&1") != 0);
  CHECK(Run("curl -sf --max-time 5 http://" + worker_metrics + "/metrics > /dev/null 2>&1") != 0);

  const std::string tls_config = "    scheme: https\n    tls_config: {ca_file: '" + dir +
                                 "/server.pem', cert_file: '" + dir + "/server.pem', key_file: '" +
                                 dir + "/server.key'}\n";
  prometheus = StartPrometheus(dir, prom,
                               "  - job_name: coordinator\n" + tls_config +
                                   "    static_configs: [{targets: ['" + metrics +
                                   "']}]\n  - job_name: worker\n" + tls_config +
                                   "    static_configs: [{targets: ['" + worker_metrics + "']}]\n");
  const std::string q = dir + "/query.json";
  CHECK(WaitForValue(prom, "up{job=\"coordinator\"}", 1, q, 60).value_or(-1) == 1);
  CHECK(WaitForValue(prom, "bitsweep_store_up{job=\"coordinator\"}", 1, q, 30).value_or(-1) == 1);
  CHECK(WaitForValue(prom, "up{job=\"worker\"}", 1, q, 30).value_or(-1) == 1);
  CHECK(WaitForValue(prom, "bitsweep_worker_info{job=\"worker\"}", 1, q, 30).value_or(-1) == 1);
}
