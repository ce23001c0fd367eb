// `bitsweep local`: the whole system on one machine for one sweep: a private PostgreSQL (kept in
// --state-dir, so a rerun reuses stored results), the coordinator and N workers on loopback
// ports; submits the sweep, watches it, prints the results table and stops what it started
// (also on Ctrl-C). Also finds the sibling binaries for `bitsweep coordinator|worker ...`.
#pragma once

#include <string>

#include "cli/service_commands.h"
#include "common/status.h"

namespace bitsweep::cli {

// The exit code: 0, or 1 when a job failed, or Fail's code.
int RunLocal(const ServiceFlags& flags, const std::string& data_dir);

// A sibling binary: next to this one (installed) or in its folder of the build tree
// (`build_subdir`, e.g. "server" for bitsweep-coordinator). NOT_FOUND naming it otherwise.
StatusOr<std::string> FindBinary(const std::string& name, const std::string& build_subdir);

}  // namespace bitsweep::cli
