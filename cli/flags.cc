#include "cli/flags.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/catalog.h"
#include "common/dtype.h"

namespace bitsweep::cli {

CLI::Validator DTypeFlag(const std::vector<std::string>& allowed) {
  return CLI::Validator(
      [allowed](std::string& value) -> std::string {
        auto canonical = CanonicalDType(value, allowed);
        if (!canonical.ok()) return std::string(canonical.status().message());
        value = *canonical;
        return "";
      },
      absl::StrJoin(allowed, "|"));
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
