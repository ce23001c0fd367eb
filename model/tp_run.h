// Running one command as N tensor-parallel ranks (`bitsweep eval/quantize --tp N`, a worker's
// job process for a job with tp = N): with N > 1 the process started first becomes the
// launcher (common/tp_launch.h) and runs N copies of its own command line as ranks; each rank
// joins its group from the rendezvous in its environment: Gloo when the job runs on the CPU,
// NCCL when it runs on CUDA (rank r on cuda:<first + r>, one GPU per rank).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

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
  // Where this rank runs: the CPU, or its own GPU (cuda:<first + rank>).
  c10::Device device = c10::Device(c10::kCPU);
};

// `device` is the user's spelling (model/device.h: cpu, cuda, cuda:N, auto), resolved here in
// every process, the launcher included, so that a bad device fails once, before any rank
// starts. On the CPU a rank joins a Gloo group and takes 1/world of the intra-op threads
// configured before the call (the ranks of one launch share a machine). On CUDA, rank r of a
// group whose device resolves to cuda:N runs on cuda:N+r and joins an NCCL group; the group
// needs tp GPUs from cuda:N on. INVALID_ARGUMENT when tp < 1, the environment's world size
// differs from `tp`, the device is not valid or there are too few GPUs (naming what is
// visible); UNAVAILABLE when the rendezvous fails or a CUDA group is asked of a build without
// NCCL. A failed rank is reported (stderr) with the launcher's rc 1.
StatusOr<TpRun> StartTensorParallel(int tp, const std::string& device = "cpu");

}  // namespace bitsweep::model
