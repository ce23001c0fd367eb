#include "model/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/safetensors_format.h"

namespace bitsweep::model {

namespace fs = std::filesystem;
using safetensors_format::ErrnoError;
using safetensors_format::kIndexName;
using safetensors_format::kSingleName;
using safetensors_format::ToScalarType;

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

// Maps `path` and validates its header; entries get `file` as their file index.
StatusOr<std::vector<TensorEntry>> ParseFile(const std::string& path, int file,
                                             std::shared_ptr<MappedFile>* map_out) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(SafetensorsHeader header,
                   ParseSafetensorsHeader(path, map->base(), map->size(), file));
  map->set_data_offset(header.data_offset);
  *map_out = std::move(map);
  return std::move(header.entries);
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
}  // namespace bitsweep::model
