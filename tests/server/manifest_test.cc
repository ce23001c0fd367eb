// The coordinator container of deploy/k8s/base/coordinator.yaml, and the arguments the
// production overlay gives it, run as Kubernetes would run them: the args with $(VAR) expanded
// from the container's env, the env resolved from the base ConfigMap and from stand-in Secrets.
// Only the addresses (loopback and free ports, not 0.0.0.0:50051), the database (a test
// database, not host bitsweep-postgres) and the TLS files (made by openssl) are replaced.
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
#include "tests/testing/certs.h"
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

// The base coordinator container: its args and its env resolved from the base ConfigMap and
// stand-in Secrets (two client and two worker tokens each).
struct Container {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
};
Container BaseCoordinator() {
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
  Container out;
  for (const YAML::Node& e : container["env"]) {
    const std::string name = e["name"].as<std::string>();
    if (e["value"]) {
      out.env[name] = e["value"].as<std::string>();
    } else if (const YAML::Node cm = e["valueFrom"]["configMapKeyRef"]) {
      REQUIRE(config[cm["key"].as<std::string>()]);
      out.env[name] = config[cm["key"].as<std::string>()].as<std::string>();
    } else if (const YAML::Node sk = e["valueFrom"]["secretKeyRef"]) {
      INFO("Secret " << sk["name"].as<std::string>() << " key " << sk["key"].as<std::string>());
      out.env[name] = secrets.at(sk["name"].as<std::string>()).at(sk["key"].as<std::string>());
    }
  }
  for (const YAML::Node& a : container["args"]) out.args.push_back(a.as<std::string>());
  return out;
}

// A coordinator process started from a container's args and env, killed if the test ends first.
class CoordinatorProcess {
 public:
  // `replace`: regular expression -> replacement, applied to every expanded argument.
  CoordinatorProcess(const Container& c,
                     const std::vector<std::pair<std::string, std::string>>& replace) {
    env_ = c.env;
    REQUIRE(env_.count("BITSWEEP_DB") == 1);
    env_["BITSWEEP_DB"] = testing::FreshDatabase();
    std::vector<std::string> argv = {testing::BinaryDir() + "/server/bitsweep-coordinator"};
    for (const std::string& a : c.args) {
      std::string arg = Expand(a, env_);
      for (const auto& [pattern, value] : replace) {
        arg = std::regex_replace(arg, std::regex(pattern), value);
      }
      INFO(arg);
      REQUIRE(arg.find("$(") == std::string::npos);  // every reference resolved
      argv.push_back(arg);
    }
    log_ = testing::ScratchDir("manifest_test") + "/coordinator.log";
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (std::freopen(log_.c_str(), "w", stderr) == nullptr) ::_exit(126);
      for (const auto& [name, value] : env_) ::setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      ::execv(cargv[0], cargv.data());
      ::_exit(127);
    }
    if (!testing::WaitForText(log_, "(port ", 60)) {
      FAIL("the coordinator did not start:\n" << testing::Slurp(log_));
    }
    const std::string text = Log();
    port_ = std::atoi(text.c_str() + text.find("(port ") + 6);
    REQUIRE(port_ > 0);
  }
  ~CoordinatorProcess() {
    if (pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string Log() const { return testing::Slurp(log_); }

  // Kubernetes stops a pod with SIGTERM: the process must exit 0 within 30 s.
  void Terminate() {
    ::kill(pid_, SIGTERM);
    int wstatus = 0;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    pid_t done = 0;
    while (absl::Now() < deadline && (done = ::waitpid(pid_, &wstatus, WNOHANG)) == 0) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    REQUIRE(done == pid_);
    pid_ = -1;
    CHECK(WIFEXITED(wstatus));
    CHECK(WEXITSTATUS(wstatus) == 0);
  }

 private:
  std::map<std::string, std::string> env_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST_CASE(
    "the coordinator starts with the base manifest's arguments and environment, answers "
    "its gRPC probe and accepts each listed token",
    "[pg][grpc]") {
  const int metrics_port = testing::FreePort();
  const int http_port = testing::FreePort();
  CoordinatorProcess coordinator(
      BaseCoordinator(),
      {{"^--listen=.*", "--listen=127.0.0.1:0"},
       {"^--metrics-listen=.*", "--metrics-listen=127.0.0.1:" + std::to_string(metrics_port)},
       {"^--http-listen=.*", "--http-listen=127.0.0.1:" + std::to_string(http_port)}});
  const std::string text = coordinator.Log();
  CHECK(text.find("client auth=bearer token") != std::string::npos);
  // The manifest's --http-listen (0.0.0.0:8080) was replaced, so the dashboard is on the free port.
  CHECK(text.find("dashboard http://127.0.0.1:" + std::to_string(http_port) + "/") !=
        std::string::npos);

  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(coordinator.port()),
                                     grpc::InsecureChannelCredentials());
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
  coordinator.Terminate();
}

TEST_CASE(
    "the coordinator starts with the production overlay's arguments: TLS with tokens on its "
    "gRPC port, the kubelet's plaintext probe answered on the health port",
    "[pg][grpc]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl command is not installed");
    return;
  }
  // The overlay's JSON patch that replaces the coordinator container's args.
  const std::string overlay =
      testing::SourceDir() + "/deploy/k8s/overlays/production/kustomization.yaml";
  Container c = BaseCoordinator();
  bool patched = false;
  for (const YAML::Node& p : YAML::LoadFile(overlay)["patches"]) {
    if (p["target"]["kind"].as<std::string>() != "Deployment" ||
        p["target"]["name"].as<std::string>() != "bitsweep-coordinator") {
      continue;
    }
    for (const YAML::Node& op : YAML::Load(p["patch"].as<std::string>())) {
      if (op["path"].as<std::string>() != "/spec/template/spec/containers/0/args") continue;
      REQUIRE(op["op"].as<std::string>() == "replace");
      c.args.clear();
      for (const YAML::Node& a : op["value"]) c.args.push_back(a.as<std::string>());
      patched = true;
    }
  }
  REQUIRE(patched);
  const std::string dir = testing::ScratchDir("manifest_test_production");
  {
    INFO(testing::Slurp(dir + "/openssl.log"));
    REQUIRE(testing::MakeCertificates(dir));
  }
  const int health_port = testing::FreePort();
  const int metrics_port = testing::FreePort();
  const int http_port = testing::FreePort();
  CoordinatorProcess coordinator(
      c, {{"^--listen=.*", "--listen=127.0.0.1:0"},
          {"^--metrics-listen=.*", "--metrics-listen=127.0.0.1:" + std::to_string(metrics_port)},
          {"^--http-listen=.*", "--http-listen=127.0.0.1:" + std::to_string(http_port)},
          {"^--health-listen=.*", "--health-listen=127.0.0.1:" + std::to_string(health_port)},
          {"^--tls-cert=.*", "--tls-cert=" + dir + "/server.pem"},
          {"^--tls-key=.*", "--tls-key=" + dir + "/server.key"}});
  const std::string target = "127.0.0.1:" + std::to_string(coordinator.port());
  const std::string text = coordinator.Log();
  CHECK(text.find("tls=on") != std::string::npos);
  CHECK(text.find("dashboard https://127.0.0.1:" + std::to_string(http_port) + "/") !=
        std::string::npos);

  // The probes: plaintext grpc.health.v1 on the health port, no credentials.
  const testing::Answer health = testing::HealthCheck(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(health_port), grpc::InsecureChannelCredentials()));
  REQUIRE(health.status.ok());
  CHECK(health.bytes == testing::kServing);

  // The gRPC port speaks TLS only, and wants a client token.
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = testing::Slurp(dir + "/ca.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto client =
      v1::Coordinator::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args));
  v1::ListSweepsResponse sweeps;
  CHECK(
      client->ListSweeps(testing::RpcContext("client-new").get(), v1::ListSweepsRequest(), &sweeps)
          .ok());
  CHECK(client->ListSweeps(testing::RpcContext("").get(), v1::ListSweepsRequest(), &sweeps)
            .error_code() == grpc::StatusCode::UNAUTHENTICATED);
  auto plaintext =
      v1::Coordinator::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  CHECK_FALSE(
      plaintext
          ->ListSweeps(testing::RpcContext("client-new", 5).get(), v1::ListSweepsRequest(), &sweeps)
          .ok());
  coordinator.Terminate();
}

}  // namespace
}  // namespace bitsweep::server
