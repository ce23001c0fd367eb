#include "model/device_upload.h"

#include <ATen/ATen.h>

#include <utility>

#ifdef BITSWEEP_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace bitsweep::model {

#ifdef BITSWEEP_WITH_CUDA

struct UploadFence::Impl {
  at::cuda::CUDAEvent event;  // recorded on the side stream after the layer's work
  c10::DeviceIndex device = 0;
};

struct DeviceUploader::Impl {
  c10::cuda::CUDAStream side;
};

#else

struct UploadFence::Impl {};
struct DeviceUploader::Impl {};

#endif

UploadFence::UploadFence() = default;
UploadFence::UploadFence(UploadFence&&) noexcept = default;
UploadFence& UploadFence::operator=(UploadFence&&) noexcept = default;
UploadFence::~UploadFence() = default;

void UploadFence::HandOver(const std::vector<at::Tensor>& tensors) const {
#ifdef BITSWEEP_WITH_CUDA
  if (!impl_) return;
  const c10::cuda::CUDAStream compute = c10::cuda::getCurrentCUDAStream(impl_->device);
  impl_->event.block(compute);
  for (const at::Tensor& t : tensors) {
    if (t.defined() && t.is_cuda()) t.record_stream(compute.unwrap());
  }
#else
  (void)tensors;
#endif
}

DeviceUploader::DeviceUploader(c10::Device device) : device_(device) {
#ifdef BITSWEEP_WITH_CUDA
  if (device_.is_cuda()) {
    const c10::DeviceIndex index = device_.has_index() ? device_.index() : 0;
    device_ = c10::Device(c10::kCUDA, index);
    impl_ = std::make_unique<Impl>(Impl{c10::cuda::getStreamFromPool(false, index)});
  }
#endif
}

DeviceUploader::~DeviceUploader() = default;

void DeviceUploader::OnSideStream(const std::function<void()>& fn) {
#ifdef BITSWEEP_WITH_CUDA
  if (impl_) {
    c10::cuda::CUDAStreamGuard guard(impl_->side);
    fn();
    return;
  }
#endif
  fn();
}

at::Tensor DeviceUploader::Upload(const at::Tensor& host) {
  if (!impl_) return host.to(device_);
  // Page-locked staging: the CPU copies the (mapped) source once, the GPU's copy engine reads
  // the staging buffer while the compute stream runs. The caching host allocator holds the
  // buffer until that copy has completed, even after `pinned` goes out of scope here.
  const at::Tensor source = host.contiguous();
  at::Tensor pinned = at::empty(
      source.sizes(), at::TensorOptions().dtype(source.scalar_type()).pinned_memory(true));
  pinned.copy_(source);
  at::Tensor device = at::empty(source.sizes(), source.options().device(device_));
  device.copy_(pinned, /*non_blocking=*/true);
  return device;
}

UploadFence DeviceUploader::Record() {
  UploadFence fence;
#ifdef BITSWEEP_WITH_CUDA
  if (impl_) {
    fence.impl_ = std::make_unique<UploadFence::Impl>();
    fence.impl_->device = device_.index();
    fence.impl_->event.record(impl_->side);
  }
#endif
  return fence;
}

}  // namespace bitsweep::model
