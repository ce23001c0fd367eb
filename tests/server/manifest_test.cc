// The coordinator container of deploy/k8s/base/coordinator.yaml, run as Kubernetes would run
// it: its args with $(VAR) expanded from its env, the env resolved from the base ConfigMap and
// from stand-in Secrets. Only the addresses (loopback and free ports, not 0.0.0.0:50051) and the
// database (a test database, not host bitsweep-postgres) are replaced.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "absl/time/clock.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

YAML::Node FindDoc(const std::string& file, const std::string& kind) {
  for (const YAML::Node& doc : YAML::LoadAllFromFile(file)) {
    if (doc["kind"] && doc["kind"].as<std::string>() == kind) return doc;
  }
  FAIL(file << " has no " << kind);
  return {};
}

// Kubernetes' $(VAR) expansion of container args.
std::string Expand(const std::string& arg, const std::map<std::string, std::string>& env) {
  std::string out = arg;
  for (const auto& [name, value] : env) {
    const std::string ref = "$(" + name + ")";
    for (size_t at; (at = out.find(ref)) != std::string::npos;) out.replace(at, ref.size(), value);
  }
  return out;
}

TEST_CASE(
    "the coordinator starts with the base manifest's arguments and environment, answers "
    "its gRPC probe and accepts each listed token",
    "[pg][grpc]") {
  const std::string k8s = testing::SourceDir() + "/deploy/k8s/base";
  const YAML::Node config = FindDoc(k8s + "/config.yaml", "ConfigMap")["data"];
  const YAML::Node deployment = FindDoc(k8s + "/coordinator.yaml", "Deployment");
  YAML::Node container;
  for (const YAML::Node& c : deployment["spec"]["template"]["spec"]["containers"]) {
    if (c["name"].as<std::string>() == "coordinator") container = c;
  }
  REQUIRE(container);
  const std::map<std::string, std::map<std::string, std::string>> secrets = {
      {"bitsweep-tokens",
       {{"client-tokens", "client-old,client-new"}, {"worker-tokens", "worker-old,worker-new"}}},
      {"bitsweep-db", {{"password", "unused-by-the-test-server"}}}};
  std::map<std::string, std::string> env;
  for (const YAML::Node& e : container["env"]) {
    const std::string name = e["name"].as<std::string>();
    if (e["value"]) {
      env[name] = e["value"].as<std::string>();
    } else if (const YAML::Node cm = e["valueFrom"]["configMapKeyRef"]) {
      REQUIRE(config[cm["key"].as<std::string>()]);
      env[name] = config[cm["key"].as<std::string>()].as<std::string>();
    } else if (const YAML::Node sk = e["valueFrom"]["secretKeyRef"]) {
      INFO("Secret " << sk["name"].as<std::string>() << " key " << sk["key"].as<std::string>());
      env[name] = secrets.at(sk["name"].as<std::string>()).at(sk["key"].as<std::string>());
    }
  }
  REQUIRE(env.count("BITSWEEP_DB") == 1);
  env["BITSWEEP_DB"] = testing::FreshDatabase();
  const int metrics_port = testing::FreePort();
  const int http_port = testing::FreePort();
  std::vector<std::string> argv = {testing::BinaryDir() + "/server/bitsweep-coordinator"};
  for (const YAML::Node& a : container["args"]) {
    std::string arg = Expand(a.as<std::string>(), env);
    arg = std::regex_replace(arg, std::regex("^--listen=.*"), "--listen=127.0.0.1:0");
    arg = std::regex_replace(arg, std::regex("^--metrics-listen=.*"),
                             "--metrics-listen=127.0.0.1:" + std::to_string(metrics_port));
    arg = std::regex_replace(arg, std::regex("^--http-listen=.*"),
                             "--http-listen=127.0.0.1:" + std::to_string(http_port));
    INFO(arg);
    REQUIRE(arg.find("$(") == std::string::npos);  // every reference resolved
    argv.push_back(arg);
  }

  const std::string log = testing::ScratchDir("manifest_test") + "/coordinator.log";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (std::freopen(log.c_str(), "w", stderr) == nullptr) ::_exit(126);
    for (const auto& [name, value] : env) ::setenv(name.c_str(), value.c_str(), 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      if (pid > 0 && ::waitpid(pid, nullptr, WNOHANG) == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } reap{pid};
  if (!testing::WaitForText(log, "(port ", 60)) {
    FAIL("the coordinator did not start:\n" << testing::Slurp(log));
  }
  const std::string text = testing::Slurp(log);
  const int port = std::atoi(text.c_str() + text.find("(port ") + 6);
  REQUIRE(port > 0);
  CHECK(text.find("client auth=bearer token") != std::string::npos);
  // The manifest's --http-listen (0.0.0.0:8080) was replaced, so the dashboard is on the free port.
  CHECK(text.find("dashboard http://127.0.0.1:" + std::to_string(http_port) + "/") !=
        std::string::npos);

  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto ctx = [](const std::string& token) { return testing::RpcContext(token); };
  // The kubelet's probe: grpc.health.v1.Health/Check for "" without credentials.
  const testing::Answer health = testing::HealthCheck(channel);
  REQUIRE(health.status.ok());
  CHECK(health.bytes == testing::kServing);

  auto client = v1::Coordinator::NewStub(channel);
  v1::ListSweepsResponse sweeps;
  CHECK(client->ListSweeps(ctx("client-old").get(), v1::ListSweepsRequest(), &sweeps).ok());
  CHECK(client->ListSweeps(ctx("client-new").get(), v1::ListSweepsRequest(), &sweeps).ok());
  CHECK(client->ListSweeps(ctx("").get(), v1::ListSweepsRequest(), &sweeps).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);

  // Kubernetes stops a pod with SIGTERM.
  ::kill(pid, SIGTERM);
  int wstatus = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  pid_t done = 0;
  while (absl::Now() < deadline && (done = ::waitpid(pid, &wstatus, WNOHANG)) == 0) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  REQUIRE(done == pid);
  reap.pid = -1;
  CHECK(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 0);
}

}  // namespace
}  // namespace bitsweep::server
