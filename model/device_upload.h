// Host-to-device copies that overlap compute, for layer streaming on CUDA (Qwen3Model's
// LoadOptions::prefetch_layers). While the compute stream runs decoder layer i, a loader thread
// reads layer i + 1 from the memory-mapped checkpoint into pinned (page-locked) host memory and
// copies it to the GPU asynchronously on a side stream; the compute stream waits on an event
// for those copies before its first kernel reads the layer.
//
//   DeviceUploader up(device);            // on the loader thread
//   up.OnSideStream([&] { w = up.Upload(host_weight).to(at::kBFloat16); ... });
//   UploadFence f = up.Record();          // the end of the copies and conversions issued
//   ...                                   // on the compute thread:
//   f.HandOver(layer_tensors);            // the compute stream waits; the tensors are its own
//
// Every device tensor made inside OnSideStream belongs to the side stream in the CUDA caching
// allocator; HandOver records the compute stream as a user of each, so freeing a layer never
// lets the allocator reuse its memory while a kernel still reads it. Pinned staging buffers come
// from torch's caching host allocator, which keeps each one until its copy has completed.
//
// On the CPU (or a build without CUDA) nothing is copied: Upload returns its input, OnSideStream
// runs the function as it is and HandOver does nothing, so the same driver code runs everywhere.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <vector>

namespace bitsweep::model {

// The point on the side stream after which an uploaded layer is complete. Movable; empty for CPU
// uploads.
class UploadFence {
 public:
  UploadFence();
  UploadFence(UploadFence&&) noexcept;
  UploadFence& operator=(UploadFence&&) noexcept;
  ~UploadFence();
  // Makes the calling thread's current stream on the fence's device wait for the uploads before
  // it, and records that stream as a user of each tensor (they were made on the side stream).
  void HandOver(const std::vector<at::Tensor>& tensors) const;

 private:
  friend class DeviceUploader;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class DeviceUploader {
 public:
  explicit DeviceUploader(c10::Device device);
  ~DeviceUploader();
  DeviceUploader(const DeviceUploader&) = delete;
  DeviceUploader& operator=(const DeviceUploader&) = delete;

  c10::Device device() const { return device_; }
  // Runs `fn` with the side stream current on this thread (CUDA), so the copies and any device
  // work it issues (dtype conversions) overlap the compute stream.
  void OnSideStream(const std::function<void()>& fn);
  // `host` (a CPU tensor, e.g. memory-mapped checkpoint pages) on the device, same dtype and
  // shape: staged through pinned memory and copied without blocking. Call inside OnSideStream.
  // The result must not be read on another stream before the fence's HandOver.
  at::Tensor Upload(const at::Tensor& host);
  // Marks the end of everything issued on the side stream so far.
  UploadFence Record();

 private:
  c10::Device device_;
  struct Impl;
  std::unique_ptr<Impl> impl_;  // null on the CPU
};

}  // namespace bitsweep::model
