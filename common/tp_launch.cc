#include "common/tp_launch.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/process.h"

namespace bitsweep {
namespace {

std::string Describe(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return absl::StrCat("exited with status ", WEXITSTATUS(status));
}

}  // namespace

StatusOr<std::optional<TpEnv>> TpEnvFromEnvironment() {
  const char* rank = std::getenv("BITSWEEP_TP_RANK");
  if (rank == nullptr) return std::optional<TpEnv>();
  TpEnv env;
  const char* world = std::getenv("BITSWEEP_TP_WORLD");
  const char* master = std::getenv("BITSWEEP_TP_MASTER");
  if (!absl::SimpleAtoi(rank, &env.rank)) {
    return absl::InvalidArgumentError(
        absl::StrCat("BITSWEEP_TP_RANK=\"", rank, "\" is not a number"));
  }
  if (world == nullptr || !absl::SimpleAtoi(world, &env.world) || env.world < 1) {
    return absl::InvalidArgumentError("BITSWEEP_TP_WORLD is missing or not a positive number");
  }
  if (env.rank < 0 || env.rank >= env.world) {
    return absl::InvalidArgumentError(
        absl::StrCat("BITSWEEP_TP_RANK=", env.rank, " is outside BITSWEEP_TP_WORLD=", env.world));
  }
  const std::string m = master == nullptr ? "" : master;
  const size_t colon = m.rfind(':');
  if (colon == std::string::npos || !absl::SimpleAtoi(m.substr(colon + 1), &env.port) ||
      env.port <= 0 || env.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("BITSWEEP_TP_MASTER=\"", m, "\" is not host:port"));
  }
  env.host = m.substr(0, colon);
  return std::optional<TpEnv>(env);
}

Status LaunchRanks(const std::vector<std::string>& argv, int world, const LaunchOptions& o) {
  if (argv.empty()) return absl::InvalidArgumentError("LaunchRanks: empty command");
  if (world < 1) return absl::InvalidArgumentError(absl::StrCat("tensor-parallel size ", world));
  int port = o.port;
  if (port == 0) port = FreePort();
  if (port == 0) return absl::UnavailableError("cannot find a free loopback port");
  const std::string master = absl::StrCat(o.host, ":", port);
  std::vector<pid_t> pids(world, -1);
  for (int r = 0; r < world; ++r) {
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids) {
        if (p > 0) kill(p, SIGKILL);
      }
      return absl::ResourceExhaustedError("fork failed while launching ranks");
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(125);
      setenv("BITSWEEP_TP_RANK", std::to_string(r).c_str(), 1);
      setenv("BITSWEEP_TP_WORLD", std::to_string(world).c_str(), 1);
      setenv("BITSWEEP_TP_MASTER", master.c_str(), 1);
      if (r > 0 && o.quiet_followers) {
        if (FILE* null = std::fopen("/dev/null", "w")) dup2(fileno(null), 1);
      }
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    pids[r] = pid;
  }
  // Wait; at the first failure stop the others.
  int running = world;
  std::string failure;
  while (running > 0) {
    int status = 0;
    const pid_t done = waitpid(-1, &status, 0);
    if (done < 0) break;
    int rank = -1;
    for (int r = 0; r < world; ++r) {
      if (pids[r] == done) rank = r;
    }
    if (rank < 0) continue;
    pids[rank] = -1;
    --running;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok || !failure.empty()) continue;
    failure = absl::StrCat("rank ", rank, " of ", world, " ", Describe(status));
    for (pid_t p : pids) {
      if (p > 0) kill(p, SIGTERM);
    }
    std::thread([pids, grace = o.grace_seconds] {
      std::this_thread::sleep_for(std::chrono::seconds(grace));
      for (pid_t p : pids) {
        if (p > 0) kill(p, SIGKILL);  // a pid already reaped may be reused: only if still ours
      }
    }).detach();
  }
  if (!failure.empty()) {
    return absl::InternalError(
        absl::StrCat("tensor-parallel job failed: ", failure, "; the other ranks were stopped"));
  }
  return absl::OkStatus();
}

}  // namespace bitsweep
