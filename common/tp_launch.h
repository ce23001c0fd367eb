// Launching the ranks of a tensor-parallel job: one process per rank, as torchrun does. The
// launcher starts `world` copies of a command with the rendezvous in the environment
// (BITSWEEP_TP_RANK, BITSWEEP_TP_WORLD, BITSWEEP_TP_MASTER=host:port, where rank 0 serves the
// c10d store) and waits for them. When a rank exits non-zero or is killed, the launcher stops
// the others (SIGTERM, then SIGKILL after a grace period) and reports which rank failed and
// how; ranks also die with the launcher (PR_SET_PDEATHSIG), so no rank outlives a job.
// Torch-free: the CLI and the worker both launch ranks.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep {

struct TpEnv {
  int rank = 0;
  int world = 1;
  std::string host = "127.0.0.1";
  int port = 0;
};

// The rendezvous this process was launched with, or nullopt outside a launch; INVALID_ARGUMENT
// naming the variable when one is malformed.
StatusOr<std::optional<TpEnv>> TpEnvFromEnvironment();

struct LaunchOptions {
  std::string host = "127.0.0.1";  // where rank 0 serves the store
  int port = 0;                    // 0: a free loopback port
  int grace_seconds = 10;          // SIGTERM -> SIGKILL for the surviving ranks
  // Ranks other than 0 send stdout to /dev/null (rank 0 prints the result); stderr is kept,
  // prefixed by nothing (each rank's errors name their rank).
  bool quiet_followers = true;
};

// Runs argv[0] (an executable path) with argv as `world` ranks and waits. OK when every rank
// exits 0; otherwise INTERNAL naming the first rank that failed ("rank 1 of 2 was killed by
// signal 9", "rank 0 of 2 exited with status 3") after the others were stopped.
Status LaunchRanks(const std::vector<std::string>& argv, int world,
                   const LaunchOptions& options = {});

}  // namespace bitsweep
