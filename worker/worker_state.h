// WorkerState: what a worker keeps across its restarts, in its state directory
// (docs/reliability.md):
//   <dir>/spool/    finished results not yet delivered (worker/result_spool.h; its lock makes the
//                   directory one worker's)
//   <dir>/name      the worker's name when none was given: <host name>-<6 random hex digits>,
//                   made on the first start (the host name is the pod's name on Kubernetes)
//   <dir>/session   the worker's session (RegisterRequest.session): 32 random hex digits, made on
//                   the first start; a restarted worker resumes it, so the coordinator lets it
//                   take its name back at once and accepts its spooled results
// Not thread-safe; one per worker process.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "worker/result_spool.h"

namespace bitsweep::worker {

struct WorkerState {
  std::string dir;
  std::string name;
  std::string session;
  std::unique_ptr<ResultSpool> spool;  // locked for this process
};

// Opens (creating what is missing) the state directory `state_dir`, or by default, under
// <state home>/bitsweep/worker/ (StateHome):
//   with a `name`:  <name>@<coordinator>
//   without one:    the first of <host>@<coordinator>-<k>, k = 0, 1, ..., that no live worker
//                   holds, so that the workers of one host each find their own again after a
//                   restart.
// (unsafe characters of the leaf become '_'). They stay until removed: a per-user place that
// survives reboots, unlike /tmp, where they used to pile up. `name` "" takes the directory's
// name file (or makes one). FAILED_PRECONDITION when an explicit state directory is held by a live worker.
StatusOr<WorkerState> OpenWorkerState(const std::string& state_dir, const std::string& name,
                                      const std::string& coordinator);

// The XDG state home: $XDG_STATE_HOME when absolute, else $HOME/.local/state, else
// <temp>/bitsweep-state-<uid>.
std::string StateHome();

// This host's name (gethostname), "host" when it has none.
std::string HostName();

}  // namespace bitsweep::worker
