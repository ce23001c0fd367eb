// The token hints against a live coordinator: the real bitsweep-coordinator (on a private
// PostgreSQL, with a worker and a client token) refuses the real bitsweep-worker and bitsweep
// CLI without their token or with a wrong one, and each says which flag or environment variable
// gives the token; with the right one they work.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "store/local_postgres.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace {

using bitsweep::testing::Slurp;

constexpr char kWorkerToken[] = "worker-secret";
constexpr char kClientToken[] = "client-secret";

// The exit code of `pid`, or -1 (and the process killed) if it runs past `seconds`.
int ExitCode(pid_t pid, int seconds) {
  int status = 0;
  const bool exited =
      bitsweep::testing::WaitUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; },
                                   std::chrono::seconds(seconds), std::chrono::milliseconds(50));
  if (!exited) {
    bitsweep::testing::Signal(pid, SIGKILL);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Cli {
  int code = -1;
  std::string err;
};

// `bitsweep args` with `env` (e.g. "BITSWEEP_CLIENT_TOKEN=x", or "-u BITSWEEP_CLIENT_TOKEN").
Cli RunCli(const std::string& env, const std::string& args, const std::string& dir) {
  const std::string err = dir + "/cli.err";
  const int s = std::system(("env " + env + " " + bitsweep::testing::BinaryDir() +
                             "/cli/bitsweep " + args + " > /dev/null 2> " + err + " < /dev/null")
                                .c_str());
  return {WIFEXITED(s) ? WEXITSTATUS(s) : -1, Slurp(err)};
}

}  // namespace

TEST_CASE(
    "A worker or CLI without the live coordinator's token, or with a wrong one, is refused "
    "naming the flag and variable that give it, and works with the right one",
    "[e2e][pg][grpc]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_tokens");
  const std::string bin = bitsweep::testing::BinaryDir();
  auto pg = bitsweep::testing::StartPostgres(dir);
  auto db = pg->CreateDatabase("tokens");
  REQUIRE(db.ok());
  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::string coordinator_log = dir + "/coordinator.log";
  pid_t coordinator = bitsweep::testing::Spawn(
      {bin + "/server/bitsweep-coordinator", "--listen", addr, "--db", *db, "--metrics-listen", "",
       "--http-listen", "", "--worker-token", kWorkerToken, "--client-token", kClientToken},
      coordinator_log);
  REQUIRE(bitsweep::testing::WaitForText(coordinator_log, "gRPC on ", 60));
  INFO(Slurp(coordinator_log));

  // The worker, with `env` before it ("-u VAR" or "VAR=value") and `extra` flags after.
  auto worker = [&](const std::string& name, const std::vector<std::string>& env,
                    const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    for (const std::string& a :
         {bin + "/worker/bitsweep-worker", std::string("--coordinator"), addr,
          std::string("--name"), name, std::string("--artifacts"), dir + "/artifacts",
          std::string("--state-dir"), dir + "/state-" + name, std::string("--device"),
          std::string("cpu"), std::string("--threads"), std::string("1")}) {
      argv.push_back(a);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return bitsweep::testing::Spawn(argv, dir + "/" + name + ".log");
  };

  const pid_t none = worker("none", {"-u", "BITSWEEP_WORKER_TOKEN"}, {});
  CHECK(ExitCode(none, 60) == 1);
  const std::string none_log = Slurp(dir + "/none.log");
  INFO(none_log);
  CHECK(none_log.find("this coordinator requires a worker token and none was given (pass --token "
                      "TOKEN or set $BITSWEEP_WORKER_TOKEN; the coordinator's --worker-token "
                      "names the ones it accepts)") != std::string::npos);

  // A wrong token from the environment, and the client token given as the worker's (roles are
  // distinct): both refused the same way.
  const pid_t wrong = worker("wrong", {"BITSWEEP_WORKER_TOKEN=not-the-token"}, {});
  const pid_t client = worker("client", {"-u", "BITSWEEP_WORKER_TOKEN"}, {"--token", kClientToken});
  for (const auto& [pid, name] :
       {std::pair<pid_t, std::string>{wrong, "wrong"}, {client, "client"}}) {
    CHECK(ExitCode(pid, 60) == 1);
    const std::string log = Slurp(dir + "/" + name + ".log");
    INFO(log);
    CHECK(log.find("the worker token from --token or $BITSWEEP_WORKER_TOKEN was refused (the "
                   "coordinator accepts the ones of its --worker-token)") != std::string::npos);
  }

  const pid_t good = worker("good", {std::string("BITSWEEP_WORKER_TOKEN=") + kWorkerToken}, {});
  CHECK(bitsweep::testing::WaitForText(dir + "/good.log", "registered as worker", 60));
  INFO(Slurp(dir + "/good.log"));
  bitsweep::testing::Signal(good, SIGTERM);

  // The CLI's hint, on the same coordinator.
  const std::string at = "status --coordinator " + addr;
  const Cli no_token = RunCli("-u BITSWEEP_CLIENT_TOKEN", at, dir);
  INFO(no_token.err);
  CHECK(no_token.code == 1);
  CHECK(no_token.err.find("requires a client token and none was given (pass --token TOKEN or set "
                          "$BITSWEEP_CLIENT_TOKEN") != std::string::npos);
  const Cli worker_token = RunCli(std::string("BITSWEEP_CLIENT_TOKEN=") + kWorkerToken, at, dir);
  INFO(worker_token.err);
  CHECK(worker_token.code == 1);
  CHECK(worker_token.err.find("the token from --token or $BITSWEEP_CLIENT_TOKEN was refused") !=
        std::string::npos);
  CHECK(RunCli("-u BITSWEEP_CLIENT_TOKEN", at + " --token " + kClientToken, dir).code == 0);

  bitsweep::testing::Signal(coordinator, SIGTERM);
}
