#include "model/cuda_info.h"

#include "absl/strings/str_cat.h"

#ifdef BITSWEEP_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime.h>

#include "model/torch_compat.h"
#endif

namespace bitsweep::model {

#ifndef BITSWEEP_WITH_CUDA

bool CudaCompiledIn() { return false; }

StatusOr<std::vector<CudaDeviceInfo>> ListCudaDevices() {
  return absl::UnavailableError(
      "no CUDA in this build (configure with -DBITSWEEP_WITH_CUDA=ON against a CUDA libtorch)");
}

StatusOr<CudaDeviceInfo> QueryCudaDevice(int) { return ListCudaDevices().status(); }

#else

namespace {

absl::Status CudaError(cudaError_t e, const char* what) {
  return absl::UnavailableError(absl::StrCat("CUDA ", what, ": ", cudaGetErrorString(e)));
}

// The number of visible devices; 0 (not an error) when there is no GPU or no driver.
StatusOr<int> DeviceCount() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) {
    cudaGetLastError();  // clears the sticky error for later calls
    return 0;
  }
  if (e != cudaSuccess) return CudaError(e, "cudaGetDeviceCount");
  return n;
}

StatusOr<CudaDeviceInfo> Describe(int index) {
  CudaDeviceInfo info;
  info.index = index;
  cudaDeviceProp prop{};
  cudaError_t e = cudaGetDeviceProperties(&prop, index);
  if (e != cudaSuccess) return CudaError(e, "cudaGetDeviceProperties");
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  // cudaMemGetInfo reports on the current device; the guard restores the caller's.
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
  size_t free = 0, total = 0;
  e = cudaMemGetInfo(&free, &total);
  if (e != cudaSuccess) return CudaError(e, "cudaMemGetInfo");
  info.total_bytes = static_cast<int64_t>(total);
  info.free_bytes = static_cast<int64_t>(free) + torch_compat::CudaCachedFreeBytes(index);
  return info;
}

}  // namespace

bool CudaCompiledIn() { return true; }

StatusOr<std::vector<CudaDeviceInfo>> ListCudaDevices() {
  ASSIGN_OR_RETURN(const int n, DeviceCount());
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(CudaDeviceInfo info, Describe(i));
    out.push_back(std::move(info));
  }
  return out;
}

StatusOr<CudaDeviceInfo> QueryCudaDevice(int index) {
  ASSIGN_OR_RETURN(const int n, DeviceCount());
  if (index < 0 || index >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("cuda:", index, ": ", n, " CUDA device(s) visible"));
  }
  return Describe(index);
}

#endif  // BITSWEEP_WITH_CUDA

}  // namespace bitsweep::model
