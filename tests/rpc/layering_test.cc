// gRPC stays at the process edges: only rpc/, server/, worker/ and cli/ include <grpcpp/...>;
// rpc/ includes neither torch nor libpqxx nor prometheus.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "tests/testing/paths.h"

namespace bitsweep::rpc {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every .h and .cc below `folder` of the source tree whose text contains one of `banned`.
std::vector<std::string> Including(const std::string& folder,
                                   std::initializer_list<const char*> banned) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(testing::SourceDir() + "/" + folder)) {
    const std::string ext = entry.path().extension().string();
    if (!entry.is_regular_file() || (ext != ".h" && ext != ".cc")) continue;
    const std::string text = ReadFile(entry.path());
    for (const char* b : banned) {
      if (text.find(b) != std::string::npos) found.push_back(entry.path().string() + ": " + b);
    }
  }
  return found;
}

TEST_CASE("only rpc, server, worker and cli include gRPC headers") {
  for (const char* folder : {"common", "model", "quant", "eval", "store", "dashboard", "tools"}) {
    CHECK(Including(folder, {"<grpcpp/", ".grpc.pb.h\""}) == std::vector<std::string>());
  }
  CHECK(Including("rpc", {"<torch/", "<ATen/", "<c10/", "<pqxx/", "<prometheus/"}) ==
        std::vector<std::string>());
}

}  // namespace
}  // namespace bitsweep::rpc
