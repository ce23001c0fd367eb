#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/shape_string.h"

// The format is little-endian and both the reader (aliasing the mapping) and the writer (dumping
// tensor memory) rely on the host byte order being the file's.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

namespace bitsweep::model {

namespace fs = std::filesystem;

// The reference implementation's MAX_HEADER_SIZE: a larger header is treated as corruption
// rather than parsed, so a garbage length cannot make us allocate or scan gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr char kIndexName[] = "model.safetensors.index.json";
constexpr char kSingleName[] = "model.safetensors";
constexpr char kMetadataKey[] = "__metadata__";

// A read-only mapping of a whole file; data() is valid once the header has been parsed. A file
// truncated under a live mapping would SIGBUS its readers, which is one reason our writers
// replace files by rename (a new inode) instead of rewriting them in place.
class MappedFile {
 public:
  static StatusOr<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile() {
    if (base_ != nullptr) munmap(const_cast<uint8_t*>(base_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  const uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  const uint8_t* data() const { return base_ + data_offset_; }
  uint64_t data_size() const { return size_ - data_offset_; }
  void set_data_offset(uint64_t offset) { data_offset_ = offset; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_offset_ = 0;
};

namespace {

Status FileError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

Status TensorError(const std::string& path, const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\": ", what));
}

Status ErrnoError(int err, const std::string& what) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, ": ", std::strerror(err)));
}

at::ScalarType ToScalarType(StDType dtype) {
  switch (dtype) {
    case StDType::kF32: return at::kFloat;
    case StDType::kF16: return at::kHalf;
    case StDType::kBF16: return at::kBFloat16;
    case StDType::kF64: return at::kDouble;
    case StDType::kI64: return at::kLong;
    case StDType::kI32: return at::kInt;
    case StDType::kI16: return at::kShort;
    case StDType::kI8: return at::kChar;
    case StDType::kU8: return at::kByte;
    case StDType::kBool: return at::kBool;
  }
  return at::kFloat;  // unreachable: the switch covers the enum
}

std::optional<StDType> FromScalarType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return StDType::kF32;
    case at::kHalf: return StDType::kF16;
    case at::kBFloat16: return StDType::kBF16;
    case at::kDouble: return StDType::kF64;
    case at::kLong: return StDType::kI64;
    case at::kInt: return StDType::kI32;
    case at::kShort: return StDType::kI16;
    case at::kChar: return StDType::kI8;
    case at::kByte: return StDType::kU8;
    case at::kBool: return StDType::kBool;
    default: return std::nullopt;
  }
}

std::string RangeString(const TensorEntry& e) { return absl::StrCat("[", e.begin, ", ", e.end, ")"); }

// One header entry: {"dtype": str, "shape": [int...], "data_offsets": [int, int]}; extra keys
// are ignored as the reference implementation does.
StatusOr<TensorEntry> ParseEntry(const std::string& path, const std::string& name,
                                 const nlohmann::json& value, uint64_t buffer_size, int file) {
  if (!value.is_object()) {
    return TensorError(path, name, absl::StrCat("header entry is a JSON ", value.type_name(),
                                                ", expected an object"));
  }
  TensorEntry entry;
  entry.name = name;
  entry.file = file;

  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end()) return TensorError(path, name, "header entry has no \"dtype\"");
  if (!dtype_it->is_string()) {
    return TensorError(path, name, absl::StrCat("\"dtype\" is a JSON ", dtype_it->type_name(),
                                                ", expected a string"));
  }
  const std::string dtype_name = dtype_it->get<std::string>();
  auto dtype = ParseStDType(dtype_name);
  if (!dtype.ok()) {
    return TensorError(path, name, absl::StrCat("unsupported dtype \"", dtype_name,
                                                "\" (bitsweep reads F32, F16, BF16, F64, I64, "
                                                "I32, I16, I8, U8, BOOL)"));
  }
  entry.dtype = *dtype;

  auto shape_it = value.find("shape");
  if (shape_it == value.end()) return TensorError(path, name, "header entry has no \"shape\"");
  if (!shape_it->is_array()) {
    return TensorError(path, name, absl::StrCat("\"shape\" is a JSON ", shape_it->type_name(),
                                                ", expected an array of integers"));
  }
  for (const auto& dim : *shape_it) {
    if (dim.is_number_unsigned()) {
      const uint64_t d = dim.get<uint64_t>();
      if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return TensorError(path, name, absl::StrCat("dimension ", d, " is too large"));
      }
      entry.shape.push_back(static_cast<int64_t>(d));
    } else if (dim.is_number_integer()) {
      return TensorError(path, name, absl::StrCat("negative dimension ", dim.get<int64_t>(),
                                                  " in shape ", shape_it->dump()));
    } else {
      return TensorError(path, name, absl::StrCat("\"shape\" holds a JSON ", dim.type_name(),
                                                  ", expected integers"));
    }
  }

  auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end()) {
    return TensorError(path, name, "header entry has no \"data_offsets\"");
  }
  const nlohmann::json& offsets = *offsets_it;
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return TensorError(path, name, absl::StrCat("\"data_offsets\" is ", offsets.dump(),
                                                ", expected [begin, end] with non-negative "
                                                "integers"));
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  if (entry.begin > entry.end) {
    return TensorError(path, name, absl::StrCat("data_offsets begin ", entry.begin,
                                                " is greater than end ", entry.end));
  }
  if (entry.end > buffer_size) {
    return TensorError(path, name, absl::StrCat("data_offsets end ", entry.end,
                                                " is past the end of the data buffer (",
                                                buffer_size, " bytes)"));
  }

  uint64_t expected = StDTypeSize(entry.dtype);
  for (int64_t d : entry.shape) {
    if (__builtin_mul_overflow(expected, static_cast<uint64_t>(d), &expected)) {
      return TensorError(path, name, absl::StrCat("shape ", ShapeString(entry.shape),
                                                  " overflows 64-bit byte counts"));
    }
  }
  if (entry.end - entry.begin != expected) {
    return TensorError(
        path, name,
        absl::StrCat("data_offsets ", RangeString(entry), " span ", entry.end - entry.begin,
                     " bytes but shape ", ShapeString(entry.shape), " of ", dtype_name, " needs ",
                     expected, " bytes"));
  }
  return entry;
}

// The reference implementation requires the tensors, ordered by offset, to tile the buffer
// exactly: no overlap (two tensors sharing bytes would alias each other), no gap and no trailing
// bytes (both InvalidOffset / MetadataIncompleteBuffer there). We reject the same files so that
// a checkpoint bitsweep accepts is one every other safetensors reader accepts too.
Status CheckLayout(const std::string& path, std::vector<const TensorEntry*> entries,
                   uint64_t buffer_size) {
  std::sort(entries.begin(), entries.end(), [](const TensorEntry* a, const TensorEntry* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t cursor = 0;
  const TensorEntry* prev = nullptr;
  for (const TensorEntry* e : entries) {
    if (e->begin < cursor) {
      return FileError(path, absl::StrCat("tensors \"", prev->name, "\" ", RangeString(*prev),
                                          " and \"", e->name, "\" ", RangeString(*e),
                                          " overlap in the data buffer"));
    }
    if (e->begin > cursor) {
      return FileError(path, absl::StrCat("gap in the data buffer: bytes [", cursor, ", ",
                                          e->begin, ") before tensor \"", e->name,
                                          "\" belong to no tensor (safetensors requires "
                                          "contiguous data_offsets)"));
    }
    if (e->end > cursor) {
      cursor = e->end;
      prev = e;
    }
  }
  if (cursor != buffer_size) {
    return FileError(path, absl::StrCat("the data buffer holds ", buffer_size,
                                        " bytes but its tensors cover only ", cursor,
                                        " (trailing bytes belong to no tensor)"));
  }
  return absl::OkStatus();
}

Status CheckMetadata(const std::string& path, const nlohmann::json& metadata) {
  if (!metadata.is_object()) {
    return FileError(path, absl::StrCat("\"__metadata__\" is a JSON ", metadata.type_name(),
                                        ", expected an object mapping strings to strings"));
  }
  for (const auto& [key, value] : metadata.items()) {
    if (!value.is_string()) {
      return FileError(path, absl::StrCat("\"__metadata__\" key \"", key, "\" is a JSON ",
                                          value.type_name(), ", expected a string"));
    }
  }
  return absl::OkStatus();
}

// Maps `path` and validates its header; entries get `file` as their file index.
StatusOr<std::vector<TensorEntry>> ParseFile(const std::string& path, int file,
                                             std::shared_ptr<MappedFile>* map_out) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  uint64_t header_len = 0;
  std::memcpy(&header_len, map->base(), sizeof(header_len));
  if (header_len > kMaxHeaderBytes) {
    return FileError(path, absl::StrCat("header length ", header_len, " exceeds the ",
                                        kMaxHeaderBytes, "-byte limit (corrupt file?)"));
  }
  if (header_len > map->size() - 8) {
    return FileError(path, absl::StrCat("header length ", header_len,
                                        " runs past the end of the file (", map->size(),
                                        " bytes)"));
  }
  map->set_data_offset(8 + header_len);

  const char* text = reinterpret_cast<const char*>(map->base() + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + header_len);
  } catch (const nlohmann::json::exception& e) {
    return FileError(path, absl::StrCat("header is not valid JSON: ", e.what()));
  }
  if (!header.is_object()) {
    return FileError(path, absl::StrCat("header is a JSON ", header.type_name(),
                                        ", expected an object"));
  }

  std::vector<TensorEntry> entries;
  entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      RETURN_IF_ERROR(CheckMetadata(path, value));
      continue;
    }
    ASSIGN_OR_RETURN(TensorEntry entry, ParseEntry(path, name, value, map->data_size(), file));
    entries.push_back(std::move(entry));
  }
  std::vector<const TensorEntry*> pointers;
  pointers.reserve(entries.size());
  for (const TensorEntry& e : entries) pointers.push_back(&e);
  RETURN_IF_ERROR(CheckLayout(path, std::move(pointers), map->data_size()));
  *map_out = std::move(map);
  return entries;
}

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

// A shard name in a weight_map must stay inside the checkpoint directory.
bool IsSafeShardName(const std::string& name) {
  if (name.empty()) return false;
  const fs::path p(name);
  if (p.is_absolute()) return false;
  for (const auto& part : p) {
    if (part == "..") return false;
  }
  return true;
}

StatusOr<nlohmann::json> ReadJsonFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, absl::StrCat("opening ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    return FileError(path, absl::StrCat("not valid JSON: ", e.what()));
  }
}

}  // namespace

StatusOr<std::shared_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("opening ", path));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError(err, absl::StrCat("stat ", path));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return FileError(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return FileError(path, absl::StrCat("file is truncated: ", size,
                                        " bytes, shorter than the 8-byte header length"));
  }
  // PROT_READ makes a write through a loaded tensor fault instead of silently diverging from
  // the file (MAP_PRIVATE) or corrupting it (MAP_SHARED).
  void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (base == MAP_FAILED) return ErrnoError(err, absl::StrCat("mapping ", path));
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->base_ = static_cast<const uint8_t*>(base);
  file->size_ = size;
  return file;
}

StatusOr<StDType> ParseStDType(const std::string& name) {
  static const std::map<std::string, StDType> kByName = {
      {"F32", StDType::kF32}, {"F16", StDType::kF16}, {"BF16", StDType::kBF16},
      {"F64", StDType::kF64}, {"I64", StDType::kI64}, {"I32", StDType::kI32},
      {"I16", StDType::kI16}, {"I8", StDType::kI8},   {"U8", StDType::kU8},
      {"BOOL", StDType::kBool}};
  auto it = kByName.find(name);
  if (it == kByName.end()) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported safetensors dtype \"", name, "\""));
  }
  return it->second;
}

const char* StDTypeName(StDType dtype) {
  switch (dtype) {
    case StDType::kF32: return "F32";
    case StDType::kF16: return "F16";
    case StDType::kBF16: return "BF16";
    case StDType::kF64: return "F64";
    case StDType::kI64: return "I64";
    case StDType::kI32: return "I32";
    case StDType::kI16: return "I16";
    case StDType::kI8: return "I8";
    case StDType::kU8: return "U8";
    case StDType::kBool: return "BOOL";
  }
  return "?";
}

size_t StDTypeSize(StDType dtype) {
  switch (dtype) {
    case StDType::kF64:
    case StDType::kI64: return 8;
    case StDType::kF32:
    case StDType::kI32: return 4;
    case StDType::kF16:
    case StDType::kBF16:
    case StDType::kI16: return 2;
    case StDType::kI8:
    case StDType::kU8:
    case StDType::kBool: return 1;
  }
  return 0;
}

Checkpoint::~Checkpoint() = default;

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (!fs::exists(st)) return absl::NotFoundError(absl::StrCat(path, ": no such file or directory"));

  std::unique_ptr<Checkpoint> ckpt(new Checkpoint());
  std::optional<std::map<std::string, std::string>> weight_map;  // set when sharded
  std::string index_path;

  if (fs::is_regular_file(st)) {
    ckpt->files_.push_back(path);
  } else if (fs::is_directory(st)) {
    const fs::path dir(path);
    index_path = (dir / kIndexName).string();
    if (fs::exists(index_path, ec)) {
      ASSIGN_OR_RETURN(nlohmann::json index, ReadJsonFile(index_path));
      if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        return FileError(index_path, "expected a JSON object with a \"weight_map\" object");
      }
      weight_map.emplace();
      std::set<std::string> shards;
      for (const auto& [tensor, shard] : index["weight_map"].items()) {
        if (!shard.is_string() || !IsSafeShardName(shard.get<std::string>())) {
          return FileError(index_path, absl::StrCat("weight_map entry for tensor \"", tensor,
                                                    "\" is ", shard.dump(),
                                                    ", expected a file name in ", path));
        }
        (*weight_map)[tensor] = shard.get<std::string>();
        shards.insert(shard.get<std::string>());
      }
      if (shards.empty()) return FileError(index_path, "weight_map is empty");
      for (const std::string& shard : shards) {
        const std::string shard_path = (dir / shard).string();
        if (!fs::is_regular_file(shard_path, ec)) {
          std::string example;
          for (const auto& [tensor, s] : *weight_map) {
            if (s == shard) {
              example = tensor;
              break;
            }
          }
          return FileError(index_path, absl::StrCat("weight_map names shard \"", shard,
                                                    "\" (e.g. for tensor \"", example, "\") but ",
                                                    shard_path, " does not exist"));
        }
        ckpt->files_.push_back(shard_path);
      }
    } else if (fs::exists(dir / kSingleName, ec)) {
      ckpt->files_.push_back((dir / kSingleName).string());
    } else {
      std::vector<std::string> found;
      for (const auto& item : fs::directory_iterator(dir, ec)) {
        if (item.path().extension() == ".safetensors" && item.is_regular_file()) {
          found.push_back(item.path().filename().string());
        }
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": directory holds neither ", kSingleName, ", ", kIndexName,
            " nor any *.safetensors file"));
      }
      if (found.size() > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": directory holds ", found.size(), " *.safetensors files (",
            absl::StrJoin(found, ", "), ") but no ", kIndexName, " saying which to read"));
      }
      ckpt->files_.push_back((dir / found[0]).string());
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": neither a regular file nor a directory"));
  }

  for (size_t i = 0; i < ckpt->files_.size(); ++i) {
    std::shared_ptr<MappedFile> map;
    ASSIGN_OR_RETURN(std::vector<TensorEntry> entries,
                     ParseFile(ckpt->files_[i], static_cast<int>(i), &map));
    ckpt->maps_.push_back(std::move(map));
    for (TensorEntry& entry : entries) {
      auto [it, inserted] = ckpt->entries_.emplace(entry.name, entry);
      if (!inserted) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor \"", entry.name, "\" appears in two shards: ", ckpt->files_[it->second.file],
            " and ", ckpt->files_[i]));
      }
    }
  }

  if (weight_map) {
    for (const auto& [name, entry] : ckpt->entries_) {
      auto it = weight_map->find(name);
      const std::string actual = fs::path(ckpt->files_[entry.file]).filename().string();
      if (it == weight_map->end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            ckpt->files_[entry.file], ": tensor \"", name, "\" is not listed in the weight_map of ",
            index_path));
      }
      if (it->second != actual) {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": weight_map puts tensor \"", name, "\" in ", it->second,
            " but it is stored in ", ckpt->files_[entry.file]));
      }
    }
    for (const auto& [name, shard] : *weight_map) {
      if (ckpt->entries_.count(name) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            index_path, ": weight_map puts tensor \"", name, "\" in ", shard, " but ",
            (fs::path(path) / shard).string(), " does not contain it"));
      }
    }
  }
  return ckpt;
}

bool Checkpoint::Has(const std::string& name) const { return entries_.count(name) > 0; }

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

StatusOr<TensorEntry> Checkpoint::Entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string where = "(no files)";
    if (files_.size() == 1) where = files_[0];
    if (files_.size() > 1) where = fs::path(files_[0]).parent_path().string();
    return absl::NotFoundError(
        absl::StrCat("tensor \"", name, "\" is not in the checkpoint ", where));
  }
  return it->second;
}

StatusOr<at::Tensor> Checkpoint::Load(const std::string& name) const {
  ASSIGN_OR_RETURN(TensorEntry entry, Entry(name));
  const std::shared_ptr<MappedFile>& map = maps_[entry.file];
  const uint8_t* data = map->data() + entry.begin;
  const at::TensorOptions options = at::TensorOptions().dtype(ToScalarType(entry.dtype));
  try {
    // Offsets need only be byte-aligned in the format; kernels assume element alignment, so a
    // misaligned tensor (e.g. after an odd-sized U8 tensor) gets an aligned private copy.
    if (reinterpret_cast<uintptr_t>(data) % StDTypeSize(entry.dtype) != 0) {
      at::Tensor copy = at::empty(entry.shape, options);
      if (entry.end > entry.begin) std::memcpy(copy.data_ptr(), data, entry.end - entry.begin);
      return copy;
    }
    // The deleter owns a reference to the mapping: it outlives the Checkpoint while any
    // tensor (or view of one) still points into it.
    return at::from_blob(
        const_cast<uint8_t*>(data), entry.shape, [keep = map](void*) { (void)keep; }, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(map->path(), ": tensor \"", name,
                                            "\": creating the tensor failed: ",
                                            e.what_without_backtrace()));
  }
}

void Checkpoint::ReleasePages(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  const TensorEntry& entry = it->second;
  // Whole pages inside the tensor's range only; the file is unchanged and a later access
  // faults the pages back in from it.
  const MappedFile& map = *maps_[entry.file];
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(map.data() + entry.begin);
  const uintptr_t end = reinterpret_cast<uintptr_t>(map.data() + entry.end);
  const uintptr_t first = (begin + page - 1) / page * page;
  const uintptr_t last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

StatusOr<at::Tensor> Checkpoint::LoadAs(const std::string& name, at::ScalarType dtype) const {
  ASSIGN_OR_RETURN(at::Tensor mapped, Load(name));
  if (mapped.scalar_type() == dtype) return mapped;
  ASSIGN_OR_RETURN(TensorEntry entry, Entry(name));
  at::Tensor converted;
  try {
    converted = mapped.to(dtype);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(maps_[entry.file]->path(), ": tensor \"", name,
                                            "\": conversion failed: ", e.what_without_backtrace()));
  }
  mapped.reset();
  // The source bytes are not needed again: drop them from the resident set, so converting a
  // checkpoint never holds both copies of the weights.
  ReleasePages(name);
  return converted;
}

StatusOr<std::map<std::string, at::Tensor>> Checkpoint::LoadPrefix(const std::string& prefix) const {
  std::map<std::string, at::Tensor> out;
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    ASSIGN_OR_RETURN(at::Tensor t, Load(it->first));
    out.emplace(it->first, std::move(t));
  }
  return out;
}

uint64_t Checkpoint::TotalBytes() const {
  uint64_t total = 0;
  for (const auto& [name, entry] : entries_) total += entry.end - entry.begin;
  return total;
}

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

Status WriteCheckpointStreamed(const std::string& dir, const std::vector<PlannedTensor>& layout,
                               const std::vector<size_t>& order, const TensorProducer& produce,
                               const WriteOptions& options) {
  // The layout as WriteCheckpoint would see it, with the data still to come.
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
    StatusOr<at::Tensor> made = absl::UnknownError("unset");
    try {
      made = produce(index);
      if (made.ok()) *made = made->detach().to(layout[index].dtype).contiguous();
    } catch (const c10::Error& e) {
      made = absl::InternalError(absl::StrCat(p.name, ": ", e.what_without_backtrace()));
    }
    if (!made.ok()) return fail(made.status());
    if (!made->sizes().equals(p.shape) ||
        static_cast<uint64_t>(made->nbytes()) != p.nbytes) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("tensor \"", p.name, "\" was produced with another shape than planned")));
    }
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
