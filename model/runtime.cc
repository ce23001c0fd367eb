#include "model/runtime.h"

#include <ATen/Parallel.h>
#include <malloc.h>

#include "common/cpus.h"

namespace bitsweep::model {

int ConfigureRuntime(const RuntimeOptions& options) {
  if (options.retain_heap) {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  int threads = options.threads;
  if (threads <= 0) threads = DefaultComputeThreads();
  at::set_num_threads(threads);
  return at::get_num_threads();
}

void ReturnLargeAllocations(size_t bytes) { mallopt(M_MMAP_THRESHOLD, static_cast<int>(bytes)); }

}  // namespace bitsweep::model
