// A tensor shape as error messages print it: "[2, 3]" ("[]" for a scalar). Used by model/ and
// quant/ alike. Header-only.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {

inline std::string ShapeString(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? ", " : "", shape[i]);
  return s + "]";
}

// REQUIRES: t is defined.
inline std::string ShapeString(const at::Tensor& t) { return ShapeString(t.sizes()); }

}  // namespace bitsweep::model
