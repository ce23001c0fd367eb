#include "model/runtime.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include "common/cpus.h"

namespace bitsweep::model {

namespace {
// The process's mmap threshold: glibc's initial 128 KiB until ConfigureRuntime retains the heap.
int mmap_threshold = 128 * 1024;
}  // namespace

int ConfigureRuntime(const RuntimeOptions& options) {
  if (options.retain_heap) {
    mmap_threshold = 1 << 30;
    mallopt(M_MMAP_THRESHOLD, mmap_threshold);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  int threads = options.threads;
  if (threads <= 0) threads = DefaultComputeThreads();
  at::set_num_threads(threads);
  return at::get_num_threads();
}

ReturnLargeAllocations::ReturnLargeAllocations(size_t bytes) {
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes));
}

ReturnLargeAllocations::~ReturnLargeAllocations() {
  mallopt(M_MMAP_THRESHOLD, mmap_threshold);
}

}  // namespace bitsweep::model
