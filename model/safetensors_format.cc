#include "model/safetensors_format.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace safetensors_format {

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

}  // namespace safetensors_format

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

}  // namespace bitsweep::model
