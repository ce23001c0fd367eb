#include "common/dtype.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bitsweep {
namespace {

// Every accepted spelling (lower case) and its canonical name.
constexpr std::pair<const char*, const char*> kDTypeSpellings[] = {
    {"fp32", "fp32"}, {"f32", "fp32"}, {"float32", "fp32"}, {"bf16", "bf16"}, {"bfloat16", "bf16"},
    {"fp16", "fp16"}, {"f16", "fp16"}, {"float16", "fp16"}, {"half", "fp16"},
    // The device's default compute dtype (bf16 on CUDA, fp32 on the CPU), where a flag allows it.
    {"auto", "auto"},
};

// "a or b", "a, b or c".
std::string OneOf(const std::vector<std::string>& names) {
  if (names.size() < 2) return absl::StrJoin(names, "");
  return absl::StrCat(absl::StrJoin(names.begin(), names.end() - 1, ", "), " or ", names.back());
}

}  // namespace

StatusOr<std::string> CanonicalDType(std::string_view value,
                                     const std::vector<std::string>& allowed) {
  const std::string use = absl::StrCat("use ", OneOf(allowed));
  const std::string lower = absl::AsciiStrToLower(absl::string_view(value.data(), value.size()));
  for (const auto& [spelling, canonical] : kDTypeSpellings) {
    if (lower != spelling) continue;
    if (std::find(allowed.begin(), allowed.end(), canonical) != allowed.end()) return canonical;
    return absl::InvalidArgumentError(absl::StrCat(canonical, " is not accepted here (", use, ")"));
  }
  std::vector<std::string> aliases;
  for (const auto& [spelling, canonical] : kDTypeSpellings) {
    if (spelling != std::string_view(canonical) &&
        std::find(allowed.begin(), allowed.end(), canonical) != allowed.end()) {
      aliases.push_back(spelling);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", absl::string_view(value.data(), value.size()), "\" (", use,
                   aliases.empty() ? "" : absl::StrCat("; also accepted: ",
                                                       absl::StrJoin(aliases, ", ")),
                   ")"));
}

}  // namespace bitsweep
