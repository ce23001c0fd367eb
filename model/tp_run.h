// Running one command as N tensor-parallel ranks (`bitsweep eval/quantize --tp N`, a worker's
// job process for a job with tp = N): with N > 1 the process started first becomes the
// launcher (common/tp_launch.h) and runs N copies of its own command line as ranks; each rank
// joins the Gloo group from the rendezvous in its environment.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/collective.h"

namespace bitsweep::model {

// The command line main() received (set once, first thing in main); the launcher reruns it.
void SetCommandLine(int argc, char** argv);

struct TpRun {
  bool launched = false;  // this process was the launcher: the ranks have run, return `rc`
  int rc = 0;
  std::string failure;  // the launcher: why the ranks failed ("" when they all exited 0)
  // For a rank: its group (nullptr when tp == 1 and no rendezvous is in the environment).
  std::shared_ptr<const Collective> tp;
  int rank = 0;
};

// A rank joins its group and takes 1/world of the intra-op threads configured before the call
// (the ranks of one launch share a machine). INVALID_ARGUMENT when tp < 1 or the environment's
// world size differs from `tp`; UNAVAILABLE when the rendezvous fails. A failed rank is reported
// (stderr) with the launcher's rc 1.
StatusOr<TpRun> StartTensorParallel(int tp);

}  // namespace bitsweep::model
