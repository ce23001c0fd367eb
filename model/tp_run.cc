#include "model/tp_run.h"

#include <ATen/Parallel.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/tp_launch.h"
#include "model/collective_gloo.h"
#include "model/collective_nccl.h"
#include "model/device.h"

namespace bitsweep::model {
namespace {
std::vector<std::string>& CommandLine() {
  static std::vector<std::string> argv;
  return argv;
}
}  // namespace

void SetCommandLine(int argc, char** argv) { CommandLine().assign(argv, argv + argc); }

StatusOr<TpRun> StartTensorParallel(int tp, const std::string& device) {
  if (tp < 1) return absl::InvalidArgumentError(absl::StrCat("--tp ", tp, " must be at least 1"));
  ASSIGN_OR_RETURN(const c10::Device first, ResolveDevice(device));
  if (first.is_cuda() && first.index() + tp > VisibleCudaDevices()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tp ", tp, " on ", first.str(), " needs one GPU per rank (cuda:", first.index(),
        "..cuda:", first.index() + tp - 1, "), but ", VisibleCudaDevices(),
        " CUDA device(s) are visible"));
  }
  ASSIGN_OR_RETURN(std::optional<TpEnv> env, TpEnvFromEnvironment());
  TpRun run;
  run.device = first;
  if (!env) {
    if (tp == 1) return run;
    // The launcher: the same command line, as `tp` ranks of this very executable.
    std::vector<std::string> argv = CommandLine();
    char self[PATH_MAX];
    const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0 || argv.empty()) return absl::InternalError("cannot find this executable");
    argv[0] = std::string(self, n);
    run.launched = true;
    Status s = LaunchRanks(argv, tp);
    if (!s.ok()) {
      run.failure = std::string(s.message());
      std::fprintf(stderr, "bitsweep: error: %s\n", run.failure.c_str());
      run.rc = 1;
    }
    return run;
  }
  if (env->world != tp) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tp ", tp, " but BITSWEEP_TP_WORLD=", env->world, " in the environment"));
  }
  Rendezvous r;
  r.host = env->host;
  r.port = env->port;
  r.rank = env->rank;
  r.world_size = env->world;
  run.rank = env->rank;
  if (first.is_cuda()) {
    const int index = first.index() + env->rank;
    run.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    if (!NcclAvailable()) {
      return absl::UnavailableError(absl::StrCat(
          "tensor parallelism on CUDA needs the NCCL back end, which this build lacks "
          "(BITSWEEP_WITH_NCCL); run on --device cpu (Gloo) or rebuild with NCCL"));
    }
    ASSIGN_OR_RETURN(run.tp, ConnectNccl(r, index));
    return run;
  }
  ASSIGN_OR_RETURN(run.tp, ConnectGloo(r));
  // The ranks of one machine share its cores: each takes its share of the intra-op threads.
  at::set_num_threads(std::max(1, at::get_num_threads() / env->world));
  return run;
}

}  // namespace bitsweep::model
