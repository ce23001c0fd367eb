// Which device the engine runs on, from the user's spelling. Torch's own parser accepts any
// index and fails later, deep in a forward; this checks the build and the visible GPUs first.
#pragma once

#include <c10/core/Device.h>

#include <string>

#include "common/status.h"

namespace bitsweep::model {

// "cpu"; "cuda" (= cuda:0) or "cuda:N"; "auto" = cuda:0 when this build has CUDA and a GPU is
// visible, else cpu. INVALID_ARGUMENT naming what is available for an unknown spelling, CUDA in
// a build without it, or an index beyond the visible GPUs.
StatusOr<c10::Device> ResolveDevice(const std::string& spec);

// The CUDA devices this process sees (0 in a CPU-only build).
int VisibleCudaDevices();

}  // namespace bitsweep::model
