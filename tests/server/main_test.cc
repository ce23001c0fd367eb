// The bitsweep-coordinator executable: flags, environment tokens, refusal of remote listening,
// graceful shutdown on SIGTERM. Runs the built binary as a child process.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace bitsweep::server {
namespace {

std::string Binary() { return testing::BinaryDir() + "/server/bitsweep-coordinator"; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A child process running the coordinator; its stderr goes to a file. Killed if still running.
struct Child {
  pid_t pid = -1;
  std::string stderr_path;
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // The exit status, or -1 if it did not exit within `timeout`.
  int Wait(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }
};

std::unique_ptr<Child> Spawn(const std::string& name, const std::vector<std::string>& args,
                             const std::string& client_token_env = "") {
  auto child = std::make_unique<Child>();
  child->stderr_path = testing::ScratchDir(name) + "/stderr.txt";
  std::vector<std::string> argv = {Binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  child->pid = ::fork();
  REQUIRE(child->pid >= 0);
  if (child->pid == 0) {
    FILE* err = std::freopen(child->stderr_path.c_str(), "w", stderr);
    if (err == nullptr) ::_exit(126);
    if (!client_token_env.empty()) ::setenv("BITSWEEP_CLIENT_TOKEN", client_token_env.c_str(), 1);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  return child;
}

// Polls the child's stderr for "(port N)"; 0 if it exits or says nothing in time.
int WaitForPort(Child& child, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const std::string text = ReadFile(child.stderr_path);
    const auto at = text.find("(port ");
    if (at != std::string::npos) return std::atoi(text.c_str() + at + 6);
    int status = 0;
    if (::waitpid(child.pid, &status, WNOHANG) == child.pid) {
      child.pid = -1;
      return 0;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return 0;
}

TEST_CASE("the coordinator binary serves with the environment's token and stops on SIGTERM",
          "[pg][grpc]") {
  const std::string db = testing::FreshDatabase();
  auto child = Spawn("server-main-sigterm",
                     {"--db", db, "--listen", "127.0.0.1:0", "--metrics-listen", "",
                      "--http-listen", "", "--lease-ttl", "30"},
                     "env-client-token");
  const int port = WaitForPort(*child, absl::Seconds(30));
  INFO(ReadFile(child->stderr_path));
  REQUIRE(port > 0);
  CHECK(ReadFile(child->stderr_path).find("loopback only") != std::string::npos);

  auto stub = v1::Coordinator::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  v1::ListSweepsResponse sweeps;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    CHECK(stub->ListSweeps(&ctx, v1::ListSweepsRequest(), &sweeps).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ctx.AddMetadata("authorization", "Bearer env-client-token");
    const grpc::Status st = stub->ListSweeps(&ctx, v1::ListSweepsRequest(), &sweeps);
    INFO(st.error_message());
    CHECK(st.ok());
  }
  // An open connection makes gRPC wait out the whole shutdown grace period (5 s): close it.
  stub.reset();
  REQUIRE(::kill(child->pid, SIGTERM) == 0);
  CHECK(child->Wait(absl::Seconds(20)) == 0);
  CHECK(ReadFile(child->stderr_path).find("SIGTERM") != std::string::npos);
}

TEST_CASE("the coordinator binary takes --health-listen and names the health port when it starts",
          "[pg][grpc]") {
  const int health_port = testing::FreePort();
  const std::string health = "127.0.0.1:" + std::to_string(health_port);
  auto child = Spawn("server-main-health",
                     {"--db", testing::FreshDatabase(), "--listen", "127.0.0.1:0",
                      "--metrics-listen", "", "--http-listen", "", "--health-listen", health});
  const int port = WaitForPort(*child, absl::Seconds(30));
  const std::string log = ReadFile(child->stderr_path);
  INFO(log);
  REQUIRE(port > 0);
  CHECK(log.find("health plaintext " + health + " (port " + std::to_string(health_port) + ")") !=
        std::string::npos);
  REQUIRE(::kill(child->pid, SIGTERM) == 0);
  CHECK(child->Wait(absl::Seconds(20)) == 0);
}

TEST_CASE("the coordinator binary refuses a remote address without TLS and tokens") {
  auto child = Spawn("server-main-remote", {"--db", "host=127.0.0.1", "--listen", "0.0.0.0:0"});
  CHECK(child->Wait(absl::Seconds(20)) == 1);
  const std::string err = ReadFile(child->stderr_path);
  INFO(err);
  CHECK(err.find("listen") != std::string::npos);
  CHECK(err.find("insecure_allow_remote") != std::string::npos);
}

TEST_CASE("the coordinator binary refuses at start a remote --metrics-listen without TLS or "
          "--insecure-allow-remote") {
  auto child = Spawn("server-main-remote-metrics",
                     {"--db", "host=127.0.0.1", "--listen", "127.0.0.1:0", "--http-listen", "",
                      "--metrics-listen", "0.0.0.0:0"});
  CHECK(child->Wait(absl::Seconds(20)) == 1);
  const std::string err = ReadFile(child->stderr_path);
  INFO(err);
  CHECK(err.find("metrics_listen: '0.0.0.0:0' is not a loopback address; remote /metrics needs "
                 "TLS (tls_cert, tls_key: it is then served as HTTPS), or insecure_allow_remote") !=
        std::string::npos);
}

TEST_CASE("the coordinator binary refuses at start a client token that is also a worker token") {
  auto child = Spawn("server-main-shared-token",
                     {"--db", "host=127.0.0.1", "--listen", "127.0.0.1:0", "--client-token",
                      "one,same", "--worker-token", "same"});
  CHECK(child->Wait(absl::Seconds(20)) == 1);
  const std::string err = ReadFile(child->stderr_path);
  INFO(err);
  CHECK(err.find("client_token, worker_token: the same token is listed for both roles") !=
        std::string::npos);
}

TEST_CASE("the coordinator neither links libtorch nor includes torch or libpqxx headers") {
  // So that the coordinator builds in seconds and runs on any node, GPU or not.
  FILE* pipe = ::popen(("readelf -d '" + Binary() + "' 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string needed;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) needed.append(buf, n);
  const int rc = ::pclose(pipe);
  if (rc != 0 && needed.find("NEEDED") == std::string::npos) {
    WARN("readelf unavailable: linking not checked");
  } else {
    INFO(needed);
    CHECK(needed.find("libgrpc++") != std::string::npos);
    CHECK(needed.find("torch") == std::string::npos);
    CHECK(needed.find("libc10") == std::string::npos);
  }
  for (const auto& entry : std::filesystem::directory_iterator(testing::SourceDir() + "/server")) {
    const std::string text = ReadFile(entry.path().string());
    INFO(entry.path().string());
    for (const char* banned : {"<torch/", "<ATen/", "<c10/", "<pqxx/"}) {
      CHECK(text.find(banned) == std::string::npos);
    }
  }
}

}  // namespace
}  // namespace bitsweep::server
