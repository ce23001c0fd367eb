// The safetensors writers (model/safetensors_writer.cc): the bytes they write, sharding, replacing
// a previous layout, their errors and atomicity, and the streamed write.
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

TEST_CASE("The writer's output parses with a minimal hand-written safetensors parser",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_writer_bytes");
  const Named tensors = AllDtypes();
  const std::string path = dir + "/out.safetensors";
  REQUIRE(WriteSafetensorsFile(path, tensors, {{"format", "pt"}, {"k", "v"}}).ok());

  const std::string bytes = ReadFile(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  REQUIRE(8 + n <= bytes.size());
  CHECK((8 + n) % 8 == 0);
  const std::string header_text = bytes.substr(8, n);
  CHECK(header_text.front() == '{');
  CHECK(header_text.find_last_not_of(' ') == header_text.rfind('}'));
  const nlohmann::json header = nlohmann::json::parse(header_text);
  CHECK(header["__metadata__"] == nlohmann::json({{"format", "pt"}, {"k", "v"}}));

  const std::string data = bytes.substr(8 + n);
  uint64_t expected_begin = 0;
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const nlohmann::json& e = header.at(name);
    CHECK(e.at("dtype") == ExpectedDtypeName(t.scalar_type()));
    CHECK(e.at("shape").get<std::vector<int64_t>>() == t.sizes().vec());
    const auto offsets = e.at("data_offsets").get<std::vector<uint64_t>>();
    REQUIRE(offsets.size() == 2);
    // Written in the given order, contiguous, each exactly numel * element size long.
    CHECK(offsets[0] == expected_begin);
    CHECK(offsets[1] - offsets[0] == static_cast<uint64_t>(t.numel() * t.element_size()));
    REQUIRE(offsets[1] <= data.size());
    CHECK(data.substr(offsets[0], offsets[1] - offsets[0]) == Bytes(t));
    expected_begin = offsets[1];
  }
  CHECK(expected_begin == data.size());
}

TEST_CASE("Non-contiguous tensors are written in row-major order", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_noncontiguous");
  const at::Tensor base = torch::arange(12, torch::kFloat).reshape({3, 4});
  const at::Tensor t = base.t();
  REQUIRE_FALSE(t.is_contiguous());
  REQUIRE(WriteCheckpoint(dir, {{"t", t}, {"strided", base.slice(1, 0, 4, 2)}}).ok());
  auto ckpt = OpenOk(dir);
  CHECK(at::equal(LoadOk(*ckpt, "t"), t));
  CHECK(at::equal(LoadOk(*ckpt, "strided"), base.slice(1, 0, 4, 2)));
}

TEST_CASE("WriteCheckpoint writes a single model.safetensors without an index when it fits",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_single") + "/new/sub";  // created on demand
  const Named tensors = {{"a", torch::randn({8})}, {"b", torch::randn({8})}};
  WriteOptions options;
  options.max_shard_bytes = 64;  // exactly the total
  REQUIRE(WriteCheckpoint(dir, tensors, options).ok());
  std::vector<std::string> files;
  for (const auto& item : fs::directory_iterator(dir)) files.push_back(item.path().filename());
  CHECK(files == std::vector<std::string>{"model.safetensors"});
  auto ckpt = OpenOk(dir);
  CHECK(ckpt->files().size() == 1);
  CHECK(BitIdentical(LoadOk(*ckpt, "b"), tensors[1].second));
}

TEST_CASE("A small max_shard_bytes gives numbered shards and an index that read back the same "
          "tensors",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_sharded");
  Named tensors;
  for (int layer = 0; layer < 5; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    tensors.emplace_back(p + "mlp.weight", torch::randn({16, 8}));  // 512 bytes
    tensors.emplace_back(p + "norm.weight", torch::randn({8}).to(torch::kBFloat16));  // 16 bytes
  }
  tensors.emplace_back("lm_head.weight", torch::randn({64, 16}));  // 4096 bytes, over the limit
  WriteOptions options;
  options.max_shard_bytes = 1100;
  REQUIRE(WriteCheckpoint(dir, tensors, options).ok());

  // 528 bytes per layer: layers pair up (1056 <= 1100), the last layer alone, lm_head alone.
  const std::vector<std::string> shards = {
      "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
  std::vector<std::string> files;
  for (const auto& item : fs::directory_iterator(dir)) files.push_back(item.path().filename());
  std::sort(files.begin(), files.end());
  std::vector<std::string> expected_files = shards;
  expected_files.push_back("model.safetensors.index.json");
  CHECK(files == expected_files);

  const nlohmann::json index = nlohmann::json::parse(ReadFile(dir + "/model.safetensors.index.json"));
  CHECK(index["metadata"]["total_size"] == 5 * 528 + 4096);
  REQUIRE(index["weight_map"].size() == tensors.size());
  CHECK(index["weight_map"]["model.layers.1.norm.weight"] == shards[0]);
  CHECK(index["weight_map"]["model.layers.2.mlp.weight"] == shards[1]);
  CHECK(index["weight_map"]["model.layers.4.mlp.weight"] == shards[2]);
  CHECK(index["weight_map"]["lm_head.weight"] == shards[3]);

  auto ckpt = OpenOk(dir);
  CHECK(ckpt->files().size() == 4);
  CHECK(ckpt->TotalBytes() == 5 * 528 + 4096);
  CHECK(ckpt->Names().size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    CHECK(BitIdentical(LoadOk(*ckpt, name), t));
    CHECK(fs::path(ckpt->files()[ckpt->Entry(name)->file]).filename() ==
          index["weight_map"][name].get<std::string>());
  }
}

TEST_CASE("WriteCheckpoint removes the files of a previous layout and leaves other files alone",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_relayout");
  WriteFile(dir + "/config.json", "{}");
  Named tensors;
  for (int i = 0; i < 6; ++i) tensors.emplace_back("t" + std::to_string(i), torch::randn({32}));
  WriteOptions sharded;
  sharded.max_shard_bytes = 256;
  REQUIRE(WriteCheckpoint(dir, tensors, sharded).ok());
  REQUIRE(fs::exists(dir + "/model-00003-of-00003.safetensors"));

  REQUIRE(WriteCheckpoint(dir, {tensors[0]}).ok());
  std::vector<std::string> files;
  for (const auto& item : fs::directory_iterator(dir)) files.push_back(item.path().filename());
  std::sort(files.begin(), files.end());
  CHECK(files == std::vector<std::string>{"config.json", "model.safetensors"});
  CHECK(OpenOk(dir)->Names() == std::vector<std::string>{"t0"});

  REQUIRE(WriteCheckpoint(dir, tensors, sharded).ok());
  CHECK_FALSE(fs::exists(dir + "/model.safetensors"));
  CHECK(OpenOk(dir)->Names().size() == 6);
  CHECK(fs::exists(dir + "/config.json"));
}

// --- Writer errors and atomicity.

TEST_CASE("The writer rejects unsupported dtypes, duplicate names and undefined tensors, naming "
          "the tensor and writing nothing",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_writer_errors");
  const std::string path = dir + "/out.safetensors";
  const std::vector<std::pair<Named, std::string>> cases = {
      {{{"ok", torch::ones({2})}, {"cplx", torch::ones({2}, torch::kComplexFloat)}},
       "tensor \"cplx\" has dtype ComplexFloat"},
      {{{"x", torch::ones({2})}, {"x", torch::ones({2})}}, "tensor \"x\" is given twice"},
      {{{"undef", at::Tensor()}}, "tensor \"undef\" is undefined"},
      {{{"__metadata__", torch::ones({1})}}, "reserved"},
  };
  for (const auto& [tensors, expected] : cases) {
    INFO(expected);
    const Status status = WriteSafetensorsFile(path, tensors);
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(status.message()), Contains(expected));
    CHECK(WriteCheckpoint(dir + "/ckpt", tensors).code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(fs::is_empty(dir));  // not even the checkpoint directory was created
}

TEST_CASE("WriteCheckpoint with an invalid tensor leaves the existing checkpoint intact",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_writer_keeps_old");
  REQUIRE(WriteCheckpoint(dir, {{"w", torch::ones({3})}}).ok());
  CHECK_FALSE(WriteCheckpoint(dir, {{"w", torch::ones({3}, torch::kComplexDouble)}}).ok());
  CHECK(at::equal(LoadOk(*OpenOk(dir), "w"), torch::ones({3})));
}

TEST_CASE("Rewriting a file replaces it atomically: open mappings keep the old contents and no "
          "temporary files remain",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_atomic");
  const std::string path = dir + "/w.safetensors";
  REQUIRE(WriteSafetensorsFile(path, {{"w", torch::full({4}, 1.0)}}).ok());
  auto old_ckpt = OpenOk(path);
  const at::Tensor old_w = LoadOk(*old_ckpt, "w");

  REQUIRE(WriteSafetensorsFile(path, {{"w", torch::full({4}, 2.0)}}).ok());
  CHECK(at::equal(old_w, torch::full({4}, 1.0)));
  CHECK(at::equal(LoadOk(*OpenOk(path), "w"), torch::full({4}, 2.0)));
  std::vector<std::string> files;
  for (const auto& item : fs::directory_iterator(dir)) files.push_back(item.path().filename());
  CHECK(files == std::vector<std::string>{"w.safetensors"});

  const Status status = WriteSafetensorsFile(dir + "/missing/dir/x.safetensors", {});
  CHECK_FALSE(status.ok());
  CHECK_THAT(std::string(status.message()), Contains(dir + "/missing/dir/x.safetensors"));
}

// Every file of a folder by name -> bytes.
std::map<std::string, std::string> FolderBytes(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream b;
    b << in.rdbuf();
    out[e.path().filename().string()] = b.str();
  }
  return out;
}

TEST_CASE("A streamed write produces the files WriteCheckpoint writes, in any production order",
          "[safetensors]") {
  const std::string root = testing::ScratchDir("safetensors-streamed");
  Named tensors = {{"b", torch::randn({3, 5})},
                   {"a", torch::arange(7, torch::kInt64)},
                   {"c", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
                   {"d", torch::randn({40})}};
  for (const uint64_t shard : {uint64_t{0}, uint64_t{64}}) {
    INFO("max_shard_bytes " << shard);
    WriteOptions wo;
    wo.max_shard_bytes = shard;
    REQUIRE(WriteCheckpoint(root + "/whole", tensors, wo).ok());
    std::vector<PlannedTensor> layout;
    for (const auto& [name, t] : tensors) layout.push_back({name, t.scalar_type(), t.sizes().vec()});
    std::vector<size_t> produced;
    auto produce = [&](size_t i) -> StatusOr<at::Tensor> {
      produced.push_back(i);
      return tensors[i].second;
    };
    REQUIRE(WriteCheckpointStreamed(root + "/streamed", layout, {2, 0, 3, 1}, produce, wo).ok());
    CHECK(produced == std::vector<size_t>{2, 0, 3, 1});
    CHECK(FolderBytes(root + "/streamed") == FolderBytes(root + "/whole"));
    if (shard > 0) CHECK(FolderBytes(root + "/streamed").size() > 2);  // shards and the index
  }
  // A tensor produced with another shape than planned, or an order missing one, is an error and
  // leaves no shard behind.
  std::vector<PlannedTensor> layout = {{"x", at::kFloat, {2, 3}}};
  auto wrong = WriteCheckpointStreamed(root + "/wrong", layout, {0}, [](size_t) -> StatusOr<at::Tensor> {
    return torch::zeros({3, 2});
  });
  CHECK_THAT(std::string(wrong.message()), Contains("another shape than planned"));
  CHECK(FolderBytes(root + "/wrong").empty());
  CHECK_FALSE(WriteCheckpointStreamed(root + "/wrong", layout, {}, nullptr).ok());
}

TEST_CASE("A file written one tensor at a time equals WriteSafetensorsFile's, each tensor made in "
          "turn and converted to its planned dtype",
          "[safetensors]") {
  const std::string root = testing::ScratchDir("safetensors-file-streamed");
  Named tensors = {{"b", torch::randn({3, 5})},
                   {"a", torch::arange(7, torch::kInt64)},
                   {"c", torch::randn({2, 2, 2}).to(torch::kBFloat16)}};
  REQUIRE(WriteSafetensorsFile(root + "/whole.safetensors", tensors).ok());
  std::vector<PlannedTensor> layout;
  for (const auto& [name, t] : tensors) layout.push_back({name, t.scalar_type(), t.sizes().vec()});
  std::vector<size_t> produced;
  auto produce = [&](size_t i) -> StatusOr<at::Tensor> {
    produced.push_back(i);
    // "c" made in fp32: the writer converts it to the planned bf16.
    return i == 2 ? tensors[i].second.to(torch::kFloat) : tensors[i].second;
  };
  REQUIRE(WriteSafetensorsFileStreamed(root + "/streamed.safetensors", layout, produce).ok());
  CHECK(produced == std::vector<size_t>{0, 1, 2});
  const auto bytes = FolderBytes(root);
  CHECK(bytes.at("streamed.safetensors") == bytes.at("whole.safetensors"));

  // A wrong shape or a failing producer is an error naming the tensor, and leaves no file.
  auto wrong = WriteSafetensorsFileStreamed(root + "/wrong.safetensors", layout,
                                            [](size_t) -> StatusOr<at::Tensor> {
                                              return torch::zeros({1});
                                            });
  CHECK_THAT(std::string(wrong.message()), Contains("\"b\" was produced with another shape"));
  auto failing = WriteSafetensorsFileStreamed(
      root + "/failing.safetensors", layout,
      [](size_t i) -> StatusOr<at::Tensor> {
        if (i == 1) return absl::InternalError("packing a: no");
        return torch::randn({3, 5});
      });
  CHECK_THAT(std::string(failing.message()), Contains("packing a: no"));
  CHECK(FolderBytes(root).size() == 2);
}

}  // namespace
}  // namespace bitsweep::model::safetensors_test
