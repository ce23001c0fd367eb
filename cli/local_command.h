// `bitsweep local`: the whole system on one machine for one sweep: a private PostgreSQL (kept in
// --state-dir, so a rerun reuses stored results), the coordinator and N workers on loopback
// ports; checks the sweep's inputs before starting anything, submits the sweep, watches it,
// prints the results table and each failed job's error, and stops what it started on every way
// out (Ctrl-C, SIGTERM, a closed standard output; SIGKILL too: children die with their parent).
// --keep serves it all until Ctrl-C; --results and --status answer from a stopped state folder
// (PostgreSQL read-only). Also finds the sibling binaries for `bitsweep coordinator|worker ...`.
#pragma once

#include <string>

#include "cli/service_commands.h"
#include "common/status.h"

namespace bitsweep::cli {

// The exit code (cli/output.h): kExitOk, kExitJobsFailed when a job failed or was canceled,
// Fail's code when it could not run, 128 + N when signal N stopped it.
int RunLocal(const ServiceFlags& flags, const std::string& data_dir);

// $XDG_STATE_HOME/bitsweep/local, else ~/.local/state/bitsweep/local.
std::string DefaultLocalStateDir();

// A sibling binary: next to this one (installed) or in its folder of the build tree
// (`build_subdir`, e.g. "server" for bitsweep-coordinator). NOT_FOUND naming it otherwise.
StatusOr<std::string> FindBinary(const std::string& name, const std::string& build_subdir);

}  // namespace bitsweep::cli
