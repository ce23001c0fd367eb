// The safetensors writers of model/safetensors.h: one file, a (sharded) checkpoint, and a
// checkpoint streamed one tensor at a time into pre-laid-out shards.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "model/safetensors.h"
#include "model/safetensors_format.h"

namespace bitsweep::model {

namespace fs = std::filesystem;
using safetensors_format::ErrnoError;
using safetensors_format::FromScalarType;
using safetensors_format::kIndexName;
using safetensors_format::kMetadataKey;
using safetensors_format::kSingleName;

namespace {

// A tensor ready to be written: validated, CPU, contiguous.
struct Prepared {
  std::string name;
  StDType dtype;
  at::Tensor tensor;  // undefined for a tensor a streamed write produces later
  uint64_t nbytes;
  std::vector<int64_t> shape;
};

StatusOr<std::vector<Prepared>> Prepare(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  std::vector<Prepared> out;
  out.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) {
      return absl::InvalidArgumentError("tensor name \"__metadata__\" is reserved by safetensors");
    }
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is given twice"));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is undefined"));
    }
    if (!tensor.device().is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" is on ",
                                                     tensor.device().str(),
                                                     "; only CPU tensors can be written"));
    }
    if (tensor.layout() != at::kStrided) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor \"", name, "\" is not a dense (strided) tensor"));
    }
    std::optional<StDType> dtype = FromScalarType(tensor.scalar_type());
    if (!dtype) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", name, "\" has dtype ",
                                                     c10::toString(tensor.scalar_type()),
                                                     ", which bitsweep does not "
                                                     "write to safetensors"));
    }
    at::Tensor contiguous = tensor.detach().contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(contiguous.numel()) * StDTypeSize(*dtype);
    std::vector<int64_t> shape = contiguous.sizes().vec();
    out.push_back(Prepared{name, *dtype, std::move(contiguous), nbytes, std::move(shape)});
  }
  return out;
}

Status WriteAll(int fd, const void* data, uint64_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, 1u << 30));
    const ssize_t n = ::write(fd, p, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, absl::StrCat("writing ", path));
    }
    p += n;
    size -= static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// Writes through a temporary file in the same directory and renames it over `path`, so a reader
// (or a crash) never sees a half-written file under the final name. `body` writes the contents.
template <typename Body>
Status WriteAtomically(const std::string& path, Body body) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      absl::StrCat(path, ".tmp.", ::getpid(), ".", counter.fetch_add(1, std::memory_order_relaxed));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("creating ", tmp));
  Status status = body(fd, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoError(errno, absl::StrCat("syncing ", tmp));
  if (::close(fd) != 0 && status.ok()) status = ErrnoError(errno, absl::StrCat("closing ", tmp));
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoError(errno, absl::StrCat("renaming ", tmp, " to ", path));
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

// The file's first bytes: the header length, then the JSON header padded with spaces.
std::string HeaderBytes(const std::vector<const Prepared*>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given, matching their order in the buffer.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  uint64_t offset = 0;
  for (const Prepared* p : tensors) {
    header[p->name] = {{"dtype", StDTypeName(p->dtype)},
                       {"shape", p->shape},
                       {"data_offsets", {offset, offset + p->nbytes}}};
    offset += p->nbytes;
  }
  std::string text = header.dump();
  // Hugging Face pads with spaces so the buffer starts 8-byte aligned; with the mapping
  // page-aligned, every tensor whose offset is a multiple of its element size can then be
  // aliased rather than copied by readers.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  const uint64_t header_len = text.size();
  std::string out(reinterpret_cast<const char*>(&header_len), sizeof(header_len));
  return out + text;
}

Status WritePrepared(const std::string& path, const std::vector<const Prepared*>& tensors,
                     const std::map<std::string, std::string>& metadata) {
  const std::string header = HeaderBytes(tensors, metadata);
  return WriteAtomically(path, [&](int fd, const std::string& tmp) -> Status {
    RETURN_IF_ERROR(WriteAll(fd, header.data(), header.size(), tmp));
    for (const Prepared* p : tensors) {
      if (p->nbytes > 0) RETURN_IF_ERROR(WriteAll(fd, p->tensor.data_ptr(), p->nbytes, tmp));
    }
    return absl::OkStatus();
  });
}

// Greedy cut at tensor boundaries, as transformers' shard_checkpoint does: a shard is closed
// before the tensor that would push it past the limit; a tensor larger than the limit gets a
// shard of its own.
std::vector<std::vector<const Prepared*>> CutShards(const std::vector<Prepared>& prepared,
                                                    uint64_t max_shard_bytes) {
  std::vector<std::vector<const Prepared*>> shards(1);
  uint64_t shard_bytes = 0;
  for (const Prepared& p : prepared) {
    if (max_shard_bytes > 0 && !shards.back().empty() &&
        shard_bytes + p.nbytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&p);
    shard_bytes += p.nbytes;
  }
  return shards;
}

std::string ShardName(size_t i, size_t n) {
  if (n == 1) return kSingleName;
  char name[64];
  std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return name;
}

// Creates `dir` and removes the files of any previous write, so the directory never holds two
// layouts (a reader prefers the index, and would otherwise pick up stale shards). The index
// goes first: without it a half-cleaned directory is unreadable rather than wrong.
Status PrepareDirectory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("creating ", dir, ": ", ec.message()));
  std::vector<fs::path> stale;
  for (const auto& item : fs::directory_iterator(dir, ec)) {
    const std::string file = item.path().filename().string();
    if (file.rfind("model", 0) == 0 && file.find(".safetensors") != std::string::npos &&
        !item.is_directory()) {
      stale.push_back(item.path());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("listing ", dir, ": ", ec.message()));
  std::stable_partition(stale.begin(), stale.end(),
                        [](const fs::path& p) { return p.filename() == kIndexName; });
  for (const fs::path& p : stale) {
    fs::remove(p, ec);
    if (ec) return absl::InternalError(absl::StrCat("removing ", p.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// Written last: a reader that finds the index finds every shard it names.
Status WriteIndex(const std::string& dir, const std::vector<std::vector<const Prepared*>>& shards) {
  if (shards.size() == 1) return absl::OkStatus();
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    for (const Prepared* p : shards[i]) {
      weight_map[p->name] = ShardName(i, shards.size());
      total += p->nbytes;
    }
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const std::string text = index.dump(2) + "\n";
  return WriteAtomically((fs::path(dir) / kIndexName).string(),
                         [&](int fd, const std::string& tmp) {
                           return WriteAll(fd, text.data(), text.size(), tmp);
                         });
}

}  // namespace

Status WriteSafetensorsFile(const std::string& path,
                            const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                            const std::map<std::string, std::string>& metadata) {
  try {
    ASSIGN_OR_RETURN(std::vector<Prepared> prepared, Prepare(tensors));
    std::vector<const Prepared*> all;
    all.reserve(prepared.size());
    for (const Prepared& p : prepared) all.push_back(&p);
    return WritePrepared(path, all, metadata);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(path, ": ", e.what_without_backtrace()));
  }
}

Status WriteCheckpoint(const std::string& dir,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const WriteOptions& options) {
  try {
    // Validate before touching the directory, so bad input leaves a previous checkpoint intact.
    ASSIGN_OR_RETURN(std::vector<Prepared> prepared, Prepare(tensors));
    const auto shards = CutShards(prepared, options.max_shard_bytes);
    RETURN_IF_ERROR(PrepareDirectory(dir));
    for (size_t i = 0; i < shards.size(); ++i) {
      RETURN_IF_ERROR(WritePrepared((fs::path(dir) / ShardName(i, shards.size())).string(),
                                    shards[i], options.metadata));
    }
    return WriteIndex(dir, shards);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": ", e.what_without_backtrace()));
  }
}

namespace {

// The layout as WriteCheckpoint would see it, with the data still to come.
StatusOr<std::vector<Prepared>> PreparePlanned(const std::vector<PlannedTensor>& layout) {
  std::vector<Prepared> prepared;
  std::set<std::string> seen;
  for (const PlannedTensor& t : layout) {
    std::optional<StDType> dtype = FromScalarType(t.dtype);
    if (!dtype) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", t.name, "\" has dtype ",
                                                     c10::toString(t.dtype),
                                                     ", which bitsweep does not write"));
    }
    if (t.name == kMetadataKey || !seen.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor name \"", t.name,
                                                     "\" is reserved or given twice"));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    prepared.push_back(Prepared{t.name, *dtype, at::Tensor(), numel * StDTypeSize(*dtype), t.shape});
  }
  return prepared;
}

// produce(index), on the CPU in the planned dtype, contiguous, checked against the plan.
StatusOr<at::Tensor> ProducePlanned(const TensorProducer& produce, size_t index,
                                    const PlannedTensor& planned, const Prepared& p) {
  StatusOr<at::Tensor> made = absl::UnknownError("unset");
  try {
    made = produce(index);
    if (made.ok()) *made = made->detach().to(at::kCPU, planned.dtype).contiguous();
  } catch (const c10::Error& e) {
    made = absl::InternalError(absl::StrCat(p.name, ": ", e.what_without_backtrace()));
  }
  if (!made.ok()) return made.status();
  if (!made->sizes().equals(p.shape) || static_cast<uint64_t>(made->nbytes()) != p.nbytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor \"", p.name, "\" was produced with another shape than planned"));
  }
  return made;
}

}  // namespace

Status WriteSafetensorsFileStreamed(const std::string& path,
                                    const std::vector<PlannedTensor>& layout,
                                    const TensorProducer& produce,
                                    const std::map<std::string, std::string>& metadata) {
  if (!produce) return absl::InvalidArgumentError("WriteSafetensorsFileStreamed: no producer");
  ASSIGN_OR_RETURN(std::vector<Prepared> prepared, PreparePlanned(layout));
  std::vector<const Prepared*> all;
  all.reserve(prepared.size());
  for (const Prepared& p : prepared) all.push_back(&p);
  const std::string header = HeaderBytes(all, metadata);
  return WriteAtomically(path, [&](int fd, const std::string& tmp) -> Status {
    RETURN_IF_ERROR(WriteAll(fd, header.data(), header.size(), tmp));
    for (size_t i = 0; i < prepared.size(); ++i) {
      ASSIGN_OR_RETURN(at::Tensor made, ProducePlanned(produce, i, layout[i], prepared[i]));
      if (prepared[i].nbytes > 0) {
        RETURN_IF_ERROR(WriteAll(fd, made.data_ptr(), prepared[i].nbytes, tmp));
      }
    }
    return absl::OkStatus();
  });
}

Status WriteCheckpointStreamed(const std::string& dir, const std::vector<PlannedTensor>& layout,
                               const std::vector<size_t>& order, const TensorProducer& produce,
                               const WriteOptions& options) {
  ASSIGN_OR_RETURN(std::vector<Prepared> prepared, PreparePlanned(layout));
  std::vector<size_t> check = order;
  std::sort(check.begin(), check.end());
  bool permutation = check.size() == layout.size();
  for (size_t i = 0; permutation && i < check.size(); ++i) permutation = check[i] == i;
  if (!permutation || !produce) {
    return absl::InvalidArgumentError(
        "WriteCheckpointStreamed: `order` must name every tensor once, and `produce` be set");
  }
  const auto shards = CutShards(prepared, options.max_shard_bytes);
  RETURN_IF_ERROR(PrepareDirectory(dir));

  // Every shard is a temporary file holding its header; each tensor is written at its offset as
  // it is produced; the files are renamed into place once all are complete.
  struct Shard {
    std::string path, tmp;
    int fd = -1;
  };
  std::vector<Shard> files(shards.size());
  std::map<size_t, std::pair<size_t, uint64_t>> where;  // layout index -> (shard, file offset)
  auto close_all = [&files](bool unlink) {
    for (Shard& f : files) {
      if (f.fd >= 0) ::close(f.fd);
      f.fd = -1;
      if (unlink && !f.tmp.empty()) ::unlink(f.tmp.c_str());
    }
  };
  auto fail = [&](Status s) {
    close_all(true);
    return s;
  };
  for (size_t i = 0; i < shards.size(); ++i) {
    Shard& f = files[i];
    f.path = (fs::path(dir) / ShardName(i, shards.size())).string();
    f.tmp = absl::StrCat(f.path, ".tmp.", ::getpid());
    f.fd = ::open(f.tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f.fd < 0) return fail(ErrnoError(errno, absl::StrCat("creating ", f.tmp)));
    const std::string header = HeaderBytes(shards[i], options.metadata);
    Status st = WriteAll(f.fd, header.data(), header.size(), f.tmp);
    if (!st.ok()) return fail(st);
    uint64_t offset = header.size();
    for (const Prepared* p : shards[i]) {
      where[static_cast<size_t>(p - prepared.data())] = {i, offset};
      offset += p->nbytes;
    }
  }
  for (size_t index : order) {
    const Prepared& p = prepared[index];
    StatusOr<at::Tensor> made = ProducePlanned(produce, index, layout[index], p);
    if (!made.ok()) return fail(made.status());
    const auto [shard, offset] = where.at(index);
    const char* data = static_cast<const char*>(made->data_ptr());
    uint64_t done = 0;
    while (done < p.nbytes) {
      const ssize_t n = ::pwrite(files[shard].fd, data + done,
                                 static_cast<size_t>(std::min<uint64_t>(p.nbytes - done, 1u << 30)),
                                 static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail(ErrnoError(errno, absl::StrCat("writing ", files[shard].tmp)));
      done += static_cast<uint64_t>(n);
    }
  }
  for (Shard& f : files) {
    if (::fsync(f.fd) != 0) return fail(ErrnoError(errno, absl::StrCat("syncing ", f.tmp)));
    ::close(f.fd);
    f.fd = -1;
    if (::rename(f.tmp.c_str(), f.path.c_str()) != 0) {
      return fail(ErrnoError(errno, absl::StrCat("renaming ", f.tmp, " to ", f.path)));
    }
    f.tmp.clear();
  }
  return WriteIndex(dir, shards);
}

}  // namespace bitsweep::model
