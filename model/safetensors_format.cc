#include "model/safetensors_format.h"

#include <cstring>

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

}  // namespace bitsweep::model
