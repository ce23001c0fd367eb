#include "model/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {

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

namespace {

// "[2, 3]", as model/shape_string.h prints shapes (that header needs ATen).
std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? ", " : "", shape[i]);
  return s + "]";
}

Status FileError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

Status TensorError(const std::string& path, const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": tensor \"", name, "\": ", what));
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

}  // namespace

StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const std::string& path, const uint8_t* bytes,
                                                   uint64_t size, int file) {
  if (size < 8) {
    return FileError(path, absl::StrCat("file is truncated: ", size,
                                        " bytes, shorter than the 8-byte header length"));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, sizeof(header_len));
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return FileError(path, absl::StrCat("header length ", header_len, " exceeds the ",
                                        kMaxSafetensorsHeaderBytes, "-byte limit (corrupt file?)"));
  }
  if (header_len > size - 8) {
    return FileError(path, absl::StrCat("header length ", header_len,
                                        " runs past the end of the file (", size, " bytes)"));
  }
  SafetensorsHeader out;
  out.data_offset = 8 + header_len;
  const uint64_t data_size = size - out.data_offset;

  const char* text = reinterpret_cast<const char*>(bytes + 8);
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

  out.entries.reserve(header.size());
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {  // safetensors_format::kMetadataKey
      RETURN_IF_ERROR(CheckMetadata(path, value));
      continue;
    }
    ASSIGN_OR_RETURN(TensorEntry entry, ParseEntry(path, name, value, data_size, file));
    out.entries.push_back(std::move(entry));
  }
  std::vector<const TensorEntry*> pointers;
  pointers.reserve(out.entries.size());
  for (const TensorEntry& e : out.entries) pointers.push_back(&e);
  RETURN_IF_ERROR(CheckLayout(path, std::move(pointers), data_size));
  return out;
}

}  // namespace bitsweep::model
