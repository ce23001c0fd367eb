// The safetensors header, parsed and validated without libtorch: the part of a checkpoint that
// comes from the file's bytes (and so from whoever wrote the file). model/safetensors.h maps
// files and turns the entries into tensors; this file only reads bytes, so it is what
// fuzz/safetensors_header_fuzzer.cc drives and what a torch-free build (BITSWEEP_TORCH_FREE)
// compiles. Functions only; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {

// Element types of the safetensors format that bitsweep reads and writes. Any other dtype
// (F8_*, U16, U32, U64, C64, ...) is rejected with an error naming the file and tensor.
enum class StDType { kF32, kF16, kBF16, kF64, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32" -> kF32 etc.; unknown names are an InvalidArgument naming the dtype.
StatusOr<StDType> ParseStDType(const std::string& name);
const char* StDTypeName(StDType dtype);
size_t StDTypeSize(StDType dtype);

struct TensorEntry {
  std::string name;
  StDType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offset in the data buffer
  uint64_t end = 0;    // one past the last byte
  int file = 0;        // index into Checkpoint::files()
};

// The reference implementation's MAX_HEADER_SIZE: a larger header is treated as corruption
// rather than parsed, so a garbage length cannot make us allocate or scan gigabytes.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

struct SafetensorsHeader {
  std::vector<TensorEntry> entries;  // in header order
  uint64_t data_offset = 0;          // where the data buffer starts: 8 + the header length
};

// Parses the `size` bytes of a whole safetensors file at `bytes` (the 8-byte little-endian
// header length, the JSON header, then the data buffer) and validates every entry against the
// buffer: dtype, shape/byte-size agreement, bounds, no overlap, gap or trailing bytes.
// Entries get `file` as their file index. Errors are InvalidArgument naming `path` and the tensor.
StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const std::string& path, const uint8_t* bytes,
                                                   uint64_t size, int file);

}  // namespace bitsweep::model
