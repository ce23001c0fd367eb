// Reading and writing safetensors checkpoints, single-file or sharded.
//
// Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the byte buffer; offsets are relative to the buffer start.
//
// Reading memory-maps each file once. Load() returns a tensor that aliases the mapping (no copy)
// and keeps the mapping alive for as long as any such tensor exists, so weights used in their
// stored dtype cost no extra memory. Every header is validated when a file is opened: bounds,
// overlaps and gaps, dtype, shape/byte-size agreement. Every error names the file and tensor.
// A Checkpoint is immutable after Open() and safe to read from several threads.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/safetensors_header.h"  // StDType, TensorEntry

namespace bitsweep::model {

class MappedFile;  // defined in safetensors.cc

// One checkpoint: a single `*.safetensors` file, or a directory holding either
// `model.safetensors` or `model.safetensors.index.json` with its shards.
class Checkpoint {
 public:
  // `path` is a single .safetensors file or a directory holding `model.safetensors.index.json`
  // (every shard it names is opened once and must hold exactly the tensors the weight_map puts
  // there), else `model.safetensors`, else exactly one *.safetensors file. Malformed files and
  // inconsistent indexes are InvalidArgument naming the file and tensor; a missing path NotFound.
  static StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& path);
  ~Checkpoint();

  bool Has(const std::string& name) const;
  // Names in sorted order.
  std::vector<std::string> Names() const;
  StatusOr<TensorEntry> Entry(const std::string& name) const;
  // The tensor (CPU, stored dtype and shape), aliasing the memory map without a copy; it keeps
  // the mapping alive after this Checkpoint is destroyed. Read-only: the mapping is PROT_READ, so
  // writing into it (in-place ops included) crashes; clone() first to modify. Exception: a tensor
  // whose offset is not a multiple of its element size is returned as an aligned private copy.
  // NotFound for an unknown name.
  StatusOr<at::Tensor> Load(const std::string& name) const;
  // The tensor converted to `dtype` in memory this process owns; when a conversion is needed
  // the source pages are released from the resident set afterwards (MADV_DONTNEED), so
  // loading a checkpoint in another dtype peaks at about one copy of the weights. With the
  // stored dtype it is Load().
  StatusOr<at::Tensor> LoadAs(const std::string& name, at::ScalarType dtype) const;
  // Drops the pages of tensor `name` from this process's resident set (MADV_DONTNEED on the
  // whole pages inside its byte range). Tensors aliasing them stay valid: the next access reads
  // the file again. Unknown names are ignored.
  void ReleasePages(const std::string& name) const;
  // All tensors whose names start with `prefix` (e.g. "model.layers.3."), keyed by full name;
  // an empty map when none does. Same aliasing rules as Load().
  StatusOr<std::map<std::string, at::Tensor>> LoadPrefix(const std::string& prefix) const;
  const std::vector<std::string>& files() const { return files_; }
  // Total bytes of tensor data over all shards.
  uint64_t TotalBytes() const;

 private:
  Checkpoint() = default;
  std::vector<std::string> files_;
  std::vector<std::shared_ptr<MappedFile>> maps_;
  std::map<std::string, TensorEntry> entries_;
};

struct WriteOptions {
  // Shards are cut at tensor boundaries so that no shard holds more than this many bytes of
  // tensor data, except a shard holding one tensor larger than the limit; 0 = one file.
  uint64_t max_shard_bytes = 0;
  // Written into "__metadata__" (e.g. {"format": "pt"}).
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
};

// Writes one safetensors file. Tensors must be CPU, dense and of a supported dtype (else
// InvalidArgument naming the tensor); they are written in the given order, contiguous,
// little-endian, after a header padded with spaces so the data starts 8-byte aligned. The file
// appears atomically (temporary file in the same directory, then rename). Empty `metadata`
// omits "__metadata__".
Status WriteSafetensorsFile(const std::string& path,
                            const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                            const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// Writes a checkpoint into directory `dir` (created if needed) in the Hugging Face layout:
// `model.safetensors`, or `model-0000k-of-0000n.safetensors` shards plus
// `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map"}). Files
// `model*.safetensors*` left by a previous write are removed first, so the directory never mixes
// two layouts; other files are left alone. `options.metadata` goes into every file.
Status WriteCheckpoint(const std::string& dir,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const WriteOptions& options = {});

// A checkpoint too large to hold in memory, written one tensor at a time (make-tiny-model at
// any shape). `layout` fixes the file order, names, stored dtypes and shapes up front, so every
// header is written first; `produce(i)` is then called once for each index of `layout`, in
// `order` (a random generator's order, say), and its tensor is converted to the planned dtype
// and written at its offset. The files are exactly those WriteCheckpoint writes for the same
// tensors in `layout` order; shards appear by rename once complete, the index last.
struct PlannedTensor {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> shape;
};
using TensorProducer = std::function<StatusOr<at::Tensor>(size_t index)>;
Status WriteCheckpointStreamed(const std::string& dir, const std::vector<PlannedTensor>& layout,
                               const std::vector<size_t>& order, const TensorProducer& produce,
                               const WriteOptions& options = {});

// One safetensors file written one tensor at a time, in `layout` order: `produce(i)` is called
// once per index, its tensor converted to the planned dtype, written and dropped before the
// next is made, so at most one tensor is held beyond the caller's. The file is byte for byte the
// one WriteSafetensorsFile writes for the same tensors, and appears atomically.
Status WriteSafetensorsFileStreamed(
    const std::string& path, const std::vector<PlannedTensor>& layout,
    const TensorProducer& produce,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace bitsweep::model
