// The CUDA devices this process sees, with their memory: what a worker registers as its GPUs
// and what `--max-memory` defaults to on a CUDA device. Plain CUDA runtime queries (no kernel
// launches); in a build without CUDA (BITSWEEP_WITH_CUDA off) every query is UNAVAILABLE with
// "no CUDA in this build".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {

struct CudaDeviceInfo {
  int index = 0;             // as in cuda:N (after CUDA_VISIBLE_DEVICES)
  std::string name;          // e.g. "NVIDIA H100 80GB HBM3"
  int64_t total_bytes = 0;   // device memory
  int64_t free_bytes = 0;    // free now, counting the caching allocator's unused blocks as free
  int compute_major = 0;     // compute capability, e.g. 9.0
  int compute_minor = 0;
};

// Whether this build has the CUDA code paths (BITSWEEP_WITH_CUDA).
bool CudaCompiledIn();

// Every visible device, in index order. An empty list when CUDA is built in but no GPU or no
// driver is visible; UNAVAILABLE "no CUDA in this build" without CUDA, or naming the CUDA error.
StatusOr<std::vector<CudaDeviceInfo>> ListCudaDevices();

// One device, its free memory measured now. INVALID_ARGUMENT for an index beyond the visible
// devices (naming how many there are); UNAVAILABLE as ListCudaDevices.
StatusOr<CudaDeviceInfo> QueryCudaDevice(int index);

}  // namespace bitsweep::model
