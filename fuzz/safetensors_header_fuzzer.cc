// libFuzzer harness: the bytes of a whole .safetensors file (8-byte header length, JSON header,
// data buffer) through ParseSafetensorsHeader, the validation every checkpoint passes before a
// tensor aliases its memory map. An accepted header must describe tensors that tile the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto header = bitsweep::model::ParseSafetensorsHeader("fuzz.safetensors", data, size, 0);
  if (!header.ok()) return 0;
  // What Checkpoint::Load relies on: every tensor lies inside the file, and its byte count is
  // its shape's.
  const uint64_t data_size = size - header->data_offset;
  for (const auto& e : header->entries) {
    if (e.begin > e.end || e.end > data_size) std::abort();
    uint64_t bytes = bitsweep::model::StDTypeSize(e.dtype);
    for (int64_t d : e.shape) bytes *= static_cast<uint64_t>(d);
    if (bytes != e.end - e.begin) std::abort();
  }
  return 0;
}
