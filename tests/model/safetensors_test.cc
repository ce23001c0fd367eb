// The safetensors reader (model/safetensors.cc): dtypes, round trips, aliasing of the memory map,
// lookups and the files a checkpoint directory may hold.
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

TEST_CASE("Every supported dtype name parses, prints back and has its element size",
          "[safetensors]") {
  const std::vector<std::tuple<const char*, StDType, size_t>> table = {
      {"F32", StDType::kF32, 4}, {"F16", StDType::kF16, 2}, {"BF16", StDType::kBF16, 2},
      {"F64", StDType::kF64, 8}, {"I64", StDType::kI64, 8}, {"I32", StDType::kI32, 4},
      {"I16", StDType::kI16, 2}, {"I8", StDType::kI8, 1},   {"U8", StDType::kU8, 1},
      {"BOOL", StDType::kBool, 1}};
  for (const auto& [name, dtype, size] : table) {
    auto parsed = ParseStDType(name);
    REQUIRE(parsed.ok());
    CHECK(*parsed == dtype);
    CHECK(std::string(StDTypeName(dtype)) == name);
    CHECK(StDTypeSize(dtype) == size);
  }
}

TEST_CASE("ParseStDType rejects a real but unsupported safetensors dtype, naming it",
          "[safetensors]") {
  for (const char* name : {"F8_E4M3", "U32", "C64", "f32", ""}) {
    auto parsed = ParseStDType(name);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(parsed.status().message()), Contains(std::string("\"") + name + "\""));
  }
}

TEST_CASE("A written file reads back bit-identical tensors of every supported dtype",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_roundtrip_dtypes");
  const Named tensors = AllDtypes();
  const std::string path = dir + "/all.safetensors";
  REQUIRE(WriteSafetensorsFile(path, tensors).ok());

  auto ckpt = OpenOk(path);
  REQUIRE(ckpt->Names().size() == tensors.size());
  for (const auto& [name, expected] : tensors) {
    INFO(name);
    const at::Tensor got = LoadOk(*ckpt, name);
    CHECK(got.device().is_cpu());
    CHECK(got.scalar_type() == expected.scalar_type());
    CHECK(got.sizes() == expected.sizes());
    CHECK(BitIdentical(got, expected));
  }
}

TEST_CASE("Zero-dimensional scalars and empty tensors keep their shapes through a round trip",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_roundtrip_shapes");
  const Named tensors = {{"scalar_i64", torch::tensor(int64_t{-42})},
                         {"scalar_bf16", torch::tensor(0.5f).to(torch::kBFloat16)},
                         {"empty_1d", torch::zeros({0}, torch::kFloat)},
                         {"empty_mid", torch::zeros({4, 0, 2}, torch::kHalf)}};
  REQUIRE(WriteCheckpoint(dir, tensors).ok());
  auto ckpt = OpenOk(dir);

  const at::Tensor s = LoadOk(*ckpt, "scalar_i64");
  CHECK(s.dim() == 0);
  CHECK(s.item<int64_t>() == -42);
  CHECK(LoadOk(*ckpt, "scalar_bf16").dim() == 0);
  CHECK(LoadOk(*ckpt, "scalar_bf16").item<float>() == 0.5f);
  CHECK(LoadOk(*ckpt, "empty_1d").sizes() == at::IntArrayRef({0}));
  CHECK(LoadOk(*ckpt, "empty_mid").sizes() == at::IntArrayRef({4, 0, 2}));
  CHECK(LoadOk(*ckpt, "empty_mid").scalar_type() == at::kHalf);

  auto entry = ckpt->Entry("scalar_i64");
  REQUIRE(entry.ok());
  CHECK(entry->shape.empty());
  CHECK(entry->end - entry->begin == 8);
  CHECK(ckpt->Entry("empty_mid")->begin == ckpt->Entry("empty_mid")->end);
}

TEST_CASE("Loaded tensors alias the file's memory map instead of copying it", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_alias");
  const at::Tensor w = torch::randn({64, 32});
  REQUIRE(WriteCheckpoint(dir, {{"w", w}, {"b", torch::randn({64}).to(torch::kBFloat16)}}).ok());
  auto ckpt = OpenOk(dir);

  const at::Tensor a = LoadOk(*ckpt, "w");
  const at::Tensor b = LoadOk(*ckpt, "w");
  CHECK(a.data_ptr() == b.data_ptr());
  CHECK(a.data_ptr() != w.data_ptr());
  // The pointer lies inside a mapping of the checkpoint file itself, so nothing was copied.
  CHECK(MappedPathOf(a.data_ptr()) == fs::canonical(dir + "/model.safetensors").string());
  CHECK(MappedPathOf(LoadOk(*ckpt, "b").data_ptr()) == MappedPathOf(a.data_ptr()));
  CHECK(BitIdentical(a, w));
}

TEST_CASE("Loaded tensors stay valid after the Checkpoint is destroyed and the mapping goes "
          "with the last of them",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_lifetime");
  const std::string path = dir + "/model.safetensors";
  const at::Tensor w = torch::arange(1000, torch::kFloat);
  REQUIRE(WriteCheckpoint(dir, {{"w", w}}).ok());

  auto ckpt = OpenOk(dir);
  at::Tensor view = LoadOk(*ckpt, "w").slice(0, 500);
  ckpt.reset();
  CHECK(IsMapped(path));
  CHECK(view.sum().item<double>() == (500.0 + 999.0) * 500 / 2);
  CHECK(BitIdentical(view, w.slice(0, 500)));
  view = at::Tensor();
  CHECK_FALSE(IsMapped(path));
}

TEST_CASE("A tensor stored at an offset misaligned for its dtype loads as an aligned copy",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_misaligned");
  const float values[] = {1.25f, -8.0f};
  std::string data("\x07", 1);
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  const std::string path = WriteHandMade(
      dir,
      R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})",
      data);
  auto ckpt = OpenOk(path);
  const at::Tensor f = LoadOk(*ckpt, "f");
  CHECK(reinterpret_cast<uintptr_t>(f.data_ptr()) % 4 == 0);
  CHECK(f[0].item<float>() == 1.25f);
  CHECK(f[1].item<float>() == -8.0f);
  CHECK(LoadOk(*ckpt, "u").item<uint8_t>() == 7);
  // The aligned tensor still aliases the map; the misaligned one does not.
  CHECK(MappedPathOf(LoadOk(*ckpt, "u").data_ptr()) == fs::canonical(path).string());
  CHECK(MappedPathOf(f.data_ptr()) != fs::canonical(path).string());
}

TEST_CASE("The reader reads a file whose bytes were written by hand following the format",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_handmade");
  const float a[] = {0.5f, -1.5f, 3.0f, 1e10f};
  const int64_t b = -1234567890123;
  const uint16_t c[] = {0x3f80, 0xc000};  // bf16 1.0, -2.0
  std::string data(reinterpret_cast<const char*>(a), sizeof(a));
  data.append(reinterpret_cast<const char*>(&b), sizeof(b));
  data.append(reinterpret_cast<const char*>(c), sizeof(c));
  // Tensors listed out of offset order, metadata in the middle, no padding: all legal.
  const std::string header =
      R"({"b":{"dtype":"I64","shape":[],"data_offsets":[16,24]},)"
      R"("__metadata__":{"format":"pt","note":"hand"},)"
      R"("c":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]},)"
      R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  for (bool pad : {true, false}) {
    INFO("padded header: " << pad);
    auto ckpt = OpenOk(WriteHandMade(dir, header, data, pad));
    CHECK(ckpt->Names() == std::vector<std::string>{"a", "b", "c"});
    const at::Tensor ta = LoadOk(*ckpt, "a");
    CHECK(ta.sizes() == at::IntArrayRef({2, 2}));
    CHECK(BitIdentical(ta, torch::tensor({0.5f, -1.5f, 3.0f, 1e10f}).reshape({2, 2})));
    CHECK(LoadOk(*ckpt, "b").dim() == 0);
    CHECK(LoadOk(*ckpt, "b").item<int64_t>() == b);
    CHECK(BitIdentical(LoadOk(*ckpt, "c"), torch::tensor({1.0f, -2.0f}).to(torch::kBFloat16)));
    CHECK(ckpt->TotalBytes() == 28);
  }
}

TEST_CASE("LoadPrefix returns exactly the tensors of one decoder layer", "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_prefix");
  Named tensors = {{"model.embed_tokens.weight", torch::randn({4, 2})}};
  for (int layer : {1, 2, 10, 11}) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    tensors.emplace_back(p + "self_attn.q_proj.weight", torch::full({2, 2}, static_cast<float>(layer)));
    tensors.emplace_back(p + "input_layernorm.weight", torch::full({2}, static_cast<float>(layer)));
  }
  WriteOptions options;
  options.max_shard_bytes = 40;  // spread the layers over shards
  REQUIRE(WriteCheckpoint(dir, tensors, options).ok());
  auto ckpt = OpenOk(dir);
  REQUIRE(ckpt->files().size() > 1);

  auto layer1 = ckpt->LoadPrefix("model.layers.1.");
  REQUIRE(layer1.ok());
  REQUIRE(layer1->size() == 2);  // not layers 10 and 11
  CHECK(layer1->count("model.layers.1.self_attn.q_proj.weight") == 1);
  CHECK(at::equal(layer1->at("model.layers.1.input_layernorm.weight"), torch::full({2}, 1.0f)));

  auto all = ckpt->LoadPrefix("");
  REQUIRE(all.ok());
  CHECK(all->size() == tensors.size());
  auto none = ckpt->LoadPrefix("model.layers.3.");
  REQUIRE(none.ok());
  CHECK(none->empty());
}

TEST_CASE("Has, Names, Entry and TotalBytes describe the tensors, unknown names are NotFound",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_queries");
  REQUIRE(WriteCheckpoint(dir, {{"z", torch::zeros({3}, torch::kHalf)},
                                {"a", torch::zeros({2, 2}, torch::kLong)}})
              .ok());
  auto ckpt = OpenOk(dir);
  CHECK(ckpt->Has("a"));
  CHECK_FALSE(ckpt->Has("b"));
  CHECK(ckpt->Names() == std::vector<std::string>{"a", "z"});
  CHECK(ckpt->TotalBytes() == 3 * 2 + 4 * 8);
  auto entry = ckpt->Entry("z");
  REQUIRE(entry.ok());
  CHECK(entry->name == "z");
  CHECK(entry->dtype == StDType::kF16);
  CHECK(entry->shape == std::vector<int64_t>{3});
  CHECK(entry->begin == 0);  // written first
  CHECK(entry->end == 6);
  CHECK(entry->file == 0);

  auto missing = ckpt->Load("model.norm.weight");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Contains("model.norm.weight"));
  CHECK(ckpt->Entry("b").status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("Concurrent loads from several threads return the same aliased tensors",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_threads");
  Named tensors;
  for (int i = 0; i < 16; ++i) tensors.emplace_back("t" + std::to_string(i), torch::randn({256}));
  REQUIRE(WriteCheckpoint(dir, tensors).ok());
  auto ckpt = OpenOk(dir);
  std::vector<std::vector<void*>> ptrs(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (int i = 0; i < 16; ++i) {
          auto loaded = ckpt->Load("t" + std::to_string(i));
          if (round == 0) ptrs[t].push_back(loaded.ok() ? loaded->data_ptr() : nullptr);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < 4; ++t) CHECK(ptrs[t] == ptrs[0]);
  CHECK(std::find(ptrs[0].begin(), ptrs[0].end(), nullptr) == ptrs[0].end());
}

TEST_CASE("Open reads the one safetensors file of a directory even if not named model",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_dir_one_file");
  REQUIRE(WriteSafetensorsFile(dir + "/weights.safetensors", {{"x", torch::ones({2})}}).ok());
  CHECK(OpenOk(dir)->Names() == std::vector<std::string>{"x"});
}

TEST_CASE("Open of a directory with several safetensors files and no index names the directory",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_dir_ambiguous");
  REQUIRE(WriteSafetensorsFile(dir + "/a.safetensors", {{"x", torch::ones({2})}}).ok());
  REQUIRE(WriteSafetensorsFile(dir + "/b.safetensors", {{"y", torch::ones({2})}}).ok());
  const std::string message = OpenError(dir);
  CHECK_THAT(message, Contains(dir));
  CHECK_THAT(message, Contains("model.safetensors.index.json"));
  CHECK_THAT(message, Contains("a.safetensors"));
}

TEST_CASE("Open of a directory without safetensors files or of a missing path fails",
          "[safetensors]") {
  const std::string dir = testing::ScratchDir("st_dir_empty");
  CHECK_THAT(OpenError(dir), Contains(dir));
  auto missing = Checkpoint::Open(dir + "/nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.status().message()), Contains(dir + "/nope"));
}

}  // namespace
}  // namespace bitsweep::model::safetensors_test
