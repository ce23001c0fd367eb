// The one place for code that must differ between the libtorch versions bitsweep builds
// against: Debian 12's libtorch 1.13 (CPU; CI and the demo) and PyTorch's libtorch 2.x (the GPU
// image; scripts/check-cuda-build compiles against Debian 13's 2.6). Code elsewhere uses the
// names below instead of testing versions itself, so a new libtorch means editing this file.
#pragma once

#include <torch/version.h>  // TORCH_VERSION_MAJOR / TORCH_VERSION_MINOR

// True when the libtorch being compiled against is at least major.minor.
#define BITSWEEP_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace bitsweep::torch_compat {

// The libtorch version compiled against, e.g. "1.13" (for logs and reports).
inline constexpr int kTorchMajor = TORCH_VERSION_MAJOR;
inline constexpr int kTorchMinor = TORCH_VERSION_MINOR;

}  // namespace bitsweep::torch_compat

#ifdef BITSWEEP_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdint>

namespace bitsweep::torch_compat {

// Bytes the CUDA caching allocator holds on `device` but has not handed out: memory that
// cudaMemGetInfo counts as used although this process can still allocate it. The stat types
// moved from c10::cuda::CUDACachingAllocator (1.13) to c10::CachingDeviceAllocator (2.5+).
inline int64_t CudaCachedFreeBytes(int device) {
#if BITSWEEP_TORCH_AT_LEAST(2, 5)
  using c10::CachingDeviceAllocator::StatType;
#else
  using c10::cuda::CUDACachingAllocator::StatType;
#endif
  try {
    const auto stats =
        c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    const auto i = static_cast<size_t>(StatType::AGGREGATE);
    return stats.reserved_bytes[i].current - stats.allocated_bytes[i].current;
  } catch (const c10::Error&) {
    return 0;  // torch has not initialised CUDA on this device: it caches nothing there
  }
}

}  // namespace bitsweep::torch_compat
#endif  // BITSWEEP_WITH_CUDA
