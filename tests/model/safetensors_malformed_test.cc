// Malformed safetensors files and sharded checkpoints: each error is InvalidArgument naming the
// file, the tensor and the fault (model/safetensors.cc).
#include "model/safetensors.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tests/model/safetensors_testing.h"
#include "tests/testing/paths.h"

namespace bitsweep::model::safetensors_test {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

TEST_CASE("A file shorter than the 8-byte length prefix is rejected as truncated",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_truncated");
  const std::string path = dir + "/t.safetensors";
  WriteFile(path, std::string("\x10\x00\x00", 3));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("truncated"));
  WriteFile(path, "");
  CHECK_THAT(OpenError(path), Contains("truncated"));
}

TEST_CASE("A header length running past the end of the file is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_header_len");
  const std::string path = dir + "/t.safetensors";
  WriteFile(path, U64Le(100) + "{}");
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("header length 100 runs past the end of the file"));
}

TEST_CASE("An absurdly large header length is rejected before anything is parsed",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_header_huge");
  const std::string path = dir + "/t.safetensors";
  WriteFile(path, U64Le(uint64_t{1} << 40) + "{}");
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("exceeds"));
}

TEST_CASE("A header that is not valid JSON is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_json");
  const std::string path = WriteHandMade(dir, R"({"a": {"dtype": "F32", )", "");
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("not valid JSON"));
}

TEST_CASE("A header that is valid JSON but not an object is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_not_object");
  const std::string path = WriteHandMade(dir, "[1, 2]", "");
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("header is a JSON array, expected an object"));
}

TEST_CASE("Header entries missing a field or with a field of the wrong JSON type are rejected",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_fields");
  const std::string data(8, '\0');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"w":{"shape":[2],"data_offsets":[0,8]}})", "no \"dtype\""},
      {R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", "no \"shape\""},
      {R"({"w":{"dtype":"F32","shape":[2]}})", "no \"data_offsets\""},
      {R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", "\"dtype\" is a JSON number"},
      {R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", "\"shape\" is a JSON string"},
      {R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", "\"shape\" holds a JSON number"},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", "\"data_offsets\" is [0]"},
      {R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", "\"data_offsets\" is [-8,0]"},
      {R"({"w":[1,2]})", "header entry is a JSON array"},
  };
  for (const auto& [header, expected] : cases) {
    INFO(header);
    const std::string path = WriteHandMade(dir, header, data);
    const std::string message = OpenError(path);
    CHECK_THAT(message, Contains(path));
    CHECK_THAT(message, Contains("tensor \"w\""));
    CHECK_THAT(message, Contains(expected));
  }
}

TEST_CASE("A real but unsupported dtype such as F8_E4M3 is rejected, naming dtype and tensor",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_dtype");
  const std::string path = WriteHandMade(
      dir, R"({"model.layers.0.mlp.down_proj.weight":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})",
      std::string(4, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("unsupported dtype"));
  CHECK_THAT(message, Contains("F8_E4M3"));
  CHECK_THAT(message, Contains("model.layers.0.mlp.down_proj.weight"));
}

TEST_CASE("A negative dimension is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_negative_dim");
  const std::string path = WriteHandMade(
      dir, R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,0]}})", "");
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("tensor \"w\""));
  CHECK_THAT(message, Contains("negative dimension -1"));
}

TEST_CASE("data_offsets with begin greater than end are rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_begin_end");
  const std::string path = WriteHandMade(
      dir, R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", std::string(4, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains("tensor \"w\""));
  CHECK_THAT(message, Contains("begin 4 is greater than end 2"));
}

TEST_CASE("A byte span that disagrees with shape and dtype is rejected with both sizes",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_size");
  const std::string path = WriteHandMade(
      dir, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", std::string(12, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("tensor \"w\""));
  CHECK_THAT(message, Contains("12 bytes"));
  CHECK_THAT(message, Contains("needs 16 bytes"));
}

TEST_CASE("data_offsets ending past the data buffer are rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_end");
  const std::string path = WriteHandMade(
      dir, R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(12, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("tensor \"w\""));
  CHECK_THAT(message, Contains("end 16 is past the end of the data buffer (12 bytes)"));
}

TEST_CASE("Overlapping tensors are rejected, naming both", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_overlap");
  const std::string path = WriteHandMade(
      dir,
      R"({"first":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("second":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      std::string(12, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("overlap"));
  CHECK_THAT(message, Contains("\"first\""));
  CHECK_THAT(message, Contains("\"second\""));
}

TEST_CASE("A gap between tensors is rejected as the reference implementation does",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_gap");
  const std::string path = WriteHandMade(
      dir,
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
      std::string(12, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("gap"));
  CHECK_THAT(message, Contains("bytes [4, 8)"));
  CHECK_THAT(message, Contains("\"b\""));
}

TEST_CASE("Trailing data bytes that belong to no tensor are rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_trailing");
  const std::string path = WriteHandMade(
      dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, '\0'));
  const std::string message = OpenError(path);
  CHECK_THAT(message, Contains(path));
  CHECK_THAT(message, Contains("holds 6 bytes but its tensors cover only 4"));
}

TEST_CASE("__metadata__ that is not a string-to-string map is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_metadata");
  for (const std::string& metadata : {std::string(R"("pt")"), std::string(R"({"n": 3})")}) {
    const std::string path = WriteHandMade(dir, R"({"__metadata__":)" + metadata + "}", "");
    const std::string message = OpenError(path);
    CHECK_THAT(message, Contains(path));
    CHECK_THAT(message, Contains("__metadata__"));
  }
}

// --- Malformed sharded checkpoints.

// Writes a three-shard checkpoint ("a", "b" | "c", "d" | "e") and returns its index JSON.
nlohmann::json WriteThreeShards(const std::string& dir) {
  Named tensors;
  for (const char* name : {"a", "b", "c", "d", "e"}) tensors.emplace_back(name, torch::randn({4}));
  WriteOptions options;
  options.max_shard_bytes = 32;
  REQUIRE(WriteCheckpoint(dir, tensors, options).ok());
  return nlohmann::json::parse(ReadFile(dir + "/model.safetensors.index.json"));
}

TEST_CASE("An index naming a missing shard is rejected, naming the shard", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_index_missing_shard");
  WriteThreeShards(dir);
  fs::remove(dir + "/model-00002-of-00003.safetensors");
  const std::string message = OpenError(dir);
  CHECK_THAT(message, Contains("model.safetensors.index.json"));
  CHECK_THAT(message, Contains(dir + "/model-00002-of-00003.safetensors does not exist"));
}

TEST_CASE("An index whose weight_map puts a tensor in a shard that lacks it is rejected",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_index_wrong_shard");
  nlohmann::json index = WriteThreeShards(dir);
  SECTION("the tensor is in another shard") {
    index["weight_map"]["c"] = "model-00001-of-00003.safetensors";
    WriteFile(dir + "/model.safetensors.index.json", index.dump());
    const std::string message = OpenError(dir);
    CHECK_THAT(message, Contains("tensor \"c\""));
    CHECK_THAT(message, Contains("model-00001-of-00003.safetensors"));
    CHECK_THAT(message, Contains(dir + "/model-00002-of-00003.safetensors"));
  }
  SECTION("the tensor is in no shard") {
    index["weight_map"]["ghost"] = "model-00003-of-00003.safetensors";
    WriteFile(dir + "/model.safetensors.index.json", index.dump());
    const std::string message = OpenError(dir);
    CHECK_THAT(message, Contains("tensor \"ghost\""));
    CHECK_THAT(message, Contains("model-00003-of-00003.safetensors does not contain it"));
  }
}

TEST_CASE("A shard holding a tensor absent from the weight_map is rejected", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_index_unlisted");
  nlohmann::json index = WriteThreeShards(dir);
  index["weight_map"].erase("d");  // "c" still sends the reader to shard 2, which holds "d"
  WriteFile(dir + "/model.safetensors.index.json", index.dump());
  const std::string message = OpenError(dir);
  CHECK_THAT(message, Contains(dir + "/model-00002-of-00003.safetensors"));
  CHECK_THAT(message, Contains("tensor \"d\" is not listed in the weight_map"));
}

TEST_CASE("A tensor stored in two shards is rejected as a duplicate, naming both files",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_index_duplicate");
  nlohmann::json index = WriteThreeShards(dir);
  // Shard 3 now holds "e" and a second copy of "a".
  REQUIRE(WriteSafetensorsFile(dir + "/model-00003-of-00003.safetensors",
                               {{"e", torch::randn({4})}, {"a", torch::randn({4})}})
              .ok());
  const std::string message = OpenError(dir);
  CHECK_THAT(message, Contains("tensor \"a\" appears in two shards"));
  CHECK_THAT(message, Contains(dir + "/model-00001-of-00003.safetensors"));
  CHECK_THAT(message, Contains(dir + "/model-00003-of-00003.safetensors"));
}

TEST_CASE("An index whose weight_map escapes the directory or is not a map is rejected",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_bad_index_shape");
  nlohmann::json index = WriteThreeShards(dir);
  index["weight_map"]["a"] = "../model-00001-of-00003.safetensors";
  WriteFile(dir + "/model.safetensors.index.json", index.dump());
  CHECK_THAT(OpenError(dir), Contains("tensor \"a\""));
  WriteFile(dir + "/model.safetensors.index.json", R"({"weight_map": []})");
  CHECK_THAT(OpenError(dir), Contains("weight_map"));
  WriteFile(dir + "/model.safetensors.index.json", "{not json");
  CHECK_THAT(OpenError(dir), Contains("not valid JSON"));
}

}  // namespace
}  // namespace bitsweep::model::safetensors_test
