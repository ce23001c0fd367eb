#include "tests/testing/paths.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace bitsweep::testing {

namespace fs = std::filesystem;

std::string SourceDir() { return BITSWEEP_SOURCE_DIR; }
std::string BinaryDir() { return BITSWEEP_BINARY_DIR; }

std::string ProcessScratchRoot() {
  return (fs::path(BinaryDir()) / "test-scratch" / ("p" + std::to_string(getpid()))).string();
}

std::string ScratchDir(const std::string& name) {
  fs::path dir = fs::path(ProcessScratchRoot()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string SharedDataDir() {
  if (const char* env = std::getenv("BITSWEEP_DATA_DIR"); env != nullptr && *env != '\0') {
    return fs::is_directory(env) ? std::string(env) : std::string();
  }
  fs::path dir = fs::path(SourceDir()).parent_path() / "shared" / "data";
  if (fs::is_directory(dir)) return fs::canonical(dir).string();
  return "";
}

}  // namespace bitsweep::testing
