#include "tests/testing/golden.h"

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace bitsweep::testing {

std::string GoldenPath(const std::string& file) { return SourceDir() + "/tests/golden/" + file; }

std::string ReadGolden(const std::string& name, int version) {
  const std::string path = GoldenPath(name + ".txt");
  const std::string hint =
      "regenerate it with: python3 tests/golden/" + name + ".py > tests/golden/" + name + ".txt";
  if (!std::filesystem::exists(path)) FAIL(path << " is missing; " << hint);
  const std::string text = Slurp(path);
  const std::string header = "bitsweep-golden " + name + " " + std::to_string(version) + "\n";
  if (text.compare(0, header.size(), header) != 0) {
    FAIL(path << " does not start with \"" << header.substr(0, header.size() - 1)
              << "\" (another format version?); " << hint);
  }
  return text.substr(header.size());
}

}  // namespace bitsweep::testing
