// Process-wide settings for running the engine on CPU; call once from main().
#pragma once

#include <cstddef>

namespace bitsweep::model {

struct RuntimeOptions {
  // Intra-op threads for libtorch; 0 = DefaultComputeThreads(): OMP_NUM_THREADS when set,
  // otherwise the CPUs this process may use (affinity mask and cgroup quota, common/cpus.h).
  int threads = 0;
  // Keep large buffers in the heap instead of returning them to the kernel after each use:
  // the forward allocates and frees hundreds of MB per window (logits, attention scores), and
  // glibc's default mmap threshold turns each of those into fresh page faults (measured by
  // bench/forward: about 0.63 -> 0.89 of matmul throughput).
  bool retain_heap = true;
};

// Applies `options`; returns the number of intra-op threads in effect.
int ConfigureRuntime(const RuntimeOptions& options = {});

// While alive, allocations of at least `bytes` get their own mapping, returned to the kernel
// when freed, instead of the retained heap (retain_heap); the process's setting comes back at
// destruction. For a driver whose peak must be its live tensors: the layer-streamed quantizer
// frees weight-sized buffers in varying sizes, which a retained heap keeps as fragments (an 8B
// layer under RTN: 2.2 GiB live, 3.6 GiB of heap). Not for concurrent use.
class ReturnLargeAllocations {
 public:
  explicit ReturnLargeAllocations(size_t bytes);
  ~ReturnLargeAllocations();
  ReturnLargeAllocations(const ReturnLargeAllocations&) = delete;
  ReturnLargeAllocations& operator=(const ReturnLargeAllocations&) = delete;
};

}  // namespace bitsweep::model
