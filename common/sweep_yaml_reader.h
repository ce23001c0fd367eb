// The sweep parser's YAML reader (common/sweep.cc only): typed reads of yaml-cpp nodes where
// every error names the file, line, column and the field's path ("study.yaml:12:5:
// methods[1].wbits[0]: ..."), and the list-length bounds of common/sweep.h. Not a public API.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/sweep.h"
#include "common/utf8.h"

namespace bitsweep::sweep_yaml {

// Debian's Abseil has its own string_view type; public signatures use std::string_view.
inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string S(absl::string_view s) { return std::string(s); }

class YamlReader {
 public:
  explicit YamlReader(std::string source) : source_(std::move(source)) {}

  Status Error(const YAML::Node& at, std::string_view field, std::string_view message) const {
    return Error(at.Mark(), field, message);
  }
  Status Error(const YAML::Mark& mark, std::string_view field, std::string_view message) const {
    std::string where = source_;
    if (!mark.is_null()) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", AV(field), ": ", AV(message)));
  }

  // Unknown keys are errors: a misspelt key would otherwise silently fall back to a default.
  Status CheckKeys(const YAML::Node& map, std::string_view field,
                   const std::vector<std::string>& allowed) const {
    if (!map.IsMap()) return Error(map, field, "expected a mapping");
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string key = it->first.Scalar();
      // yaml-cpp keeps the first of two equal keys; the second would be silently ignored.
      if (!seen.insert(key).second) return Error(it->first, Join(field, key), "duplicate key");
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        return Error(it->first, Join(field, key),
                     absl::StrCat("unknown key (allowed: ", absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  static std::string Join(std::string_view field, std::string_view key) {
    return field.empty() ? std::string(key) : absl::StrCat(AV(field), ".", AV(key));
  }
  static std::string Index(std::string_view field, size_t i) {
    return absl::StrCat(AV(field), "[", i, "]");
  }

  StatusOr<std::string> String(const YAML::Node& n, std::string_view field) const {
    if (!n.IsScalar()) return Error(n, field, "expected a string");
    // yaml-cpp passes bytes that are not UTF-8 through; in a job spec they would make
    // JobSpecToJson throw (JSON holds only UTF-8), in the sweep name PostgreSQL refuse them.
    const size_t bad = FirstInvalidUtf8(n.Scalar());
    if (bad != n.Scalar().size()) {
      return Error(n, field, absl::StrCat("is not valid UTF-8 (byte ", bad, ")"));
    }
    return n.Scalar();
  }
  StatusOr<int64_t> Int(const YAML::Node& n, std::string_view field, int64_t min,
                        int64_t max) const {
    if (!n.IsScalar()) return Error(n, field, "expected an integer");
    const std::string& s = n.Scalar();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
      return Error(n, field, absl::StrCat("expected an integer, got \"", s, "\""));
    }
    if (v < min || v > max) {
      return Error(n, field, absl::StrCat("must be in ", min, "..", max, ", got ", v));
    }
    return v;
  }
  StatusOr<double> Double(const YAML::Node& n, std::string_view field, double min) const {
    if (!n.IsScalar()) return Error(n, field, "expected a number");
    const std::string& s = n.Scalar();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) {
      return Error(n, field, absl::StrCat("expected a number, got \"", s, "\""));
    }
    if (v < min) return Error(n, field, absl::StrCat("must be at least ", min));
    return v;
  }
  // A compute dtype (fp32 or bf16) in any spelling the CLI's --dtype takes (common/dtype.h),
  // as its canonical name.
  StatusOr<std::string> DType(const YAML::Node& n, std::string_view field) const {
    ASSIGN_OR_RETURN(std::string d, String(n, field));
    auto canonical = CanonicalDType(d, {"fp32", "bf16"});
    if (!canonical.ok()) return Error(n, field, S(canonical.status().message()));
    return *canonical;
  }
  StatusOr<bool> Bool(const YAML::Node& n, std::string_view field) const {
    const std::string s = n.IsScalar() ? absl::AsciiStrToLower(n.Scalar()) : "";
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
    return Error(n, field, "expected true or false");
  }
  // A sequence longer than kMaxSweepListLength is refused: every list multiplies the grid.
  Status CheckLength(const YAML::Node& n, std::string_view field) const {
    if (n.IsSequence() && n.size() > kMaxSweepListLength) {
      return Error(n, field,
                   absl::StrCat("a list of ", n.size(), " entries; at most ", kMaxSweepListLength,
                                " are allowed"));
    }
    return absl::OkStatus();
  }
  // A scalar or a sequence of scalars.
  StatusOr<std::vector<int>> IntList(const YAML::Node& n, std::string_view field, int64_t min,
                                     int64_t max) const {
    std::vector<int> out;
    if (n.IsScalar()) {
      ASSIGN_OR_RETURN(int64_t v, Int(n, field, min, max));
      out.push_back(static_cast<int>(v));
      return out;
    }
    if (!n.IsSequence() || n.size() == 0) {
      return Error(n, field, "expected an integer or a non-empty list of integers");
    }
    RETURN_IF_ERROR(CheckLength(n, field));
    for (size_t i = 0; i < n.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t v, Int(n[i], Index(field, i), min, max));
      out.push_back(static_cast<int>(v));
    }
    return out;
  }

 private:
  std::string source_;
};

}  // namespace bitsweep::sweep_yaml
