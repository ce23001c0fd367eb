#include "model/device.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bitsweep::model {

int VisibleCudaDevices() {
  if (!at::hasCUDA()) return 0;
  return at::detail::getCUDAHooks().getNumGPUs();
}

StatusOr<c10::Device> ResolveDevice(const std::string& spec) {
  const int gpus = VisibleCudaDevices();
  const std::string available =
      gpus == 0 ? std::string("cpu") : absl::StrCat("cpu, cuda:0..cuda:", gpus - 1);
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") return gpus > 0 ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  int index = -1;
  if (spec == "cuda") {
    index = 0;
  } else if (spec.rfind("cuda:", 0) == 0) {
    if (!absl::SimpleAtoi(spec.substr(5), &index) || index < 0) index = -2;
  } else {
    index = -2;
  }
  if (index == -2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device \"", spec, "\" is not cpu, cuda, cuda:N or auto (available: ", available, ")"));
  }
  if (!at::hasCUDA()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "device \"", spec, "\": this build of bitsweep has no CUDA (its libtorch is CPU-only); ",
        "available: cpu"));
  }
  if (index >= gpus) {
    return absl::InvalidArgumentError(absl::StrCat("device \"", spec, "\": ", gpus,
                                                   " CUDA device(s) visible; available: ",
                                                   available));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace bitsweep::model
