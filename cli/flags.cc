#include "cli/flags.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/catalog.h"

namespace bitsweep::cli {
namespace {

// Every accepted spelling (lower case) and its canonical name.
constexpr std::pair<const char*, const char*> kDTypeSpellings[] = {
    {"fp32", "fp32"}, {"f32", "fp32"}, {"float32", "fp32"}, {"bf16", "bf16"}, {"bfloat16", "bf16"},
    {"fp16", "fp16"}, {"f16", "fp16"}, {"float16", "fp16"}, {"half", "fp16"},
    {"auto", "auto"},  // the device's default compute dtype (model::ResolveComputeDType)
};

// "a or b", "a, b or c".
std::string OneOf(const std::vector<std::string>& names) {
  if (names.size() < 2) return absl::StrJoin(names, "");
  return absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "), " or ", names.back());
}

}  // namespace

CLI::Validator DTypeFlag(const std::vector<std::string>& allowed) {
  const std::string names = absl::StrJoin(allowed, "|");
  return CLI::Validator(
      [allowed](std::string& value) -> std::string {
        const std::string lower = absl::AsciiStrToLower(value);
        for (const auto& [spelling, canonical] : kDTypeSpellings) {
          if (lower != spelling) continue;
          for (const std::string& a : allowed) {
            if (a == canonical) {
              value = canonical;
              return "";
            }
          }
          return absl::StrCat(canonical, " is not accepted here (use ", OneOf(allowed), ")");
        }
        return absl::StrCat("unknown dtype \"", value, "\" (use ", OneOf(allowed), ")");
      },
      names);
}

CLI::Validator QuantizationMethodFlag() {
  std::vector<std::string> names;
  for (const MethodInfo* m : QuantizationMethods()) names.push_back(m->name);
  return CLI::Validator(
      [](std::string& value) -> std::string {
        auto row = LookupMethod(value);
        if (!row.ok()) return std::string(row.status().message());
        if ((*row)->baseline) return absl::StrCat((*row)->name, " quantizes nothing");
        value = (*row)->name;
        return "";
      },
      absl::StrJoin(names, "|"));
}

}  // namespace bitsweep::cli
