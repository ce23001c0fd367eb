#include "model/safetensors.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
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

#include "tests/testing/golden.h"
#include "tests/testing/paths.h"
#include "tests/testing/python.h"

namespace bitsweep::model {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Named = std::vector<std::pair<std::string, at::Tensor>>;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string U64Le(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

// The raw bytes of a tensor in row-major order.
std::string Bytes(const at::Tensor& t) {
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

// A safetensors file built by hand, independently of the writer under test: 8-byte
// little-endian length, the JSON header (space-padded to 8-byte alignment when `pad`), the data.
std::string HandMade(std::string header, const std::string& data, bool pad = true) {
  if (pad) header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  return U64Le(header.size()) + header + data;
}

std::string WriteHandMade(const std::string& dir, const std::string& header,
                          const std::string& data, bool pad = true) {
  const std::string path = dir + "/t.safetensors";
  WriteFile(path, HandMade(header, data, pad));
  return path;
}

std::unique_ptr<Checkpoint> OpenOk(const std::string& path) {
  auto ckpt = Checkpoint::Open(path);
  INFO(ckpt.status().ToString());
  REQUIRE(ckpt.ok());
  return std::move(ckpt).value();
}

at::Tensor LoadOk(const Checkpoint& ckpt, const std::string& name) {
  auto t = ckpt.Load(name);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  return std::move(t).value();
}

// The message of the InvalidArgument error that opening `path` must produce.
std::string OpenError(const std::string& path) {
  auto ckpt = Checkpoint::Open(path);
  REQUIRE_FALSE(ckpt.ok());
  CHECK(ckpt.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(ckpt.status().message());
}

bool BitIdentical(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && Bytes(a) == Bytes(b);
}

// The format's dtype names, spelled out independently of the code under test.
std::string ExpectedDtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kDouble: return "F64";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: return "?";
  }
}

// The file backing the mapping that contains `p`, from /proc/self/maps ("" when none).
std::string MappedPathOf(const void* p) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode;
    std::getline(fields >> std::ws, path);
    const size_t dash = range.find('-');
    const uintptr_t lo = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t hi = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (addr >= lo && addr < hi) return path;
  }
  return "";
}

bool IsMapped(const std::string& path) {
  const std::string text = ReadFile("/proc/self/maps");
  return text.find(fs::canonical(path).string()) != std::string::npos;
}

// One tensor of every supported dtype, with values that catch byte-order and rounding mistakes.
Named AllDtypes() {
  const float f32[] = {1.5f, -0.0f, std::numeric_limits<float>::infinity(),
                       std::numeric_limits<float>::quiet_NaN(), 1e-45f, -3.25e38f};
  Named out;
  out.emplace_back("f32", torch::from_blob(const_cast<float*>(f32), {2, 3}, torch::kFloat).clone());
  out.emplace_back("f16", torch::linspace(-4, 4, 12).reshape({3, 4}).to(torch::kHalf));
  out.emplace_back("bf16", torch::linspace(-1e30, 1e30, 10).to(torch::kBFloat16));
  const int64_t i64[] = {std::numeric_limits<int64_t>::min(), -1, 0, 1,
                         std::numeric_limits<int64_t>::max(), 0x0102030405060708};
  out.emplace_back("i64", torch::from_blob(const_cast<int64_t*>(i64), {3, 2}, torch::kLong).clone());
  out.emplace_back("f64", torch::tensor({3.141592653589793, -2.5e-300}, torch::kDouble));
  out.emplace_back("i32", torch::tensor({-7, 2147483647, 65536}, torch::kInt));
  out.emplace_back("i16", torch::tensor({-32768, 258}, torch::kShort));
  out.emplace_back("i8", torch::tensor({-128, 127, 5}, torch::kChar));
  out.emplace_back("u8", torch::tensor({0, 255, 7}, torch::kByte));
  out.emplace_back("bool", torch::tensor({true, false, true}, torch::kBool));
  out.emplace_back("scalar", torch::tensor(2.75f));
  out.emplace_back("empty", torch::zeros({0, 3}, torch::kBFloat16));
  return out;
}

// Runs `script` with Debian's python3 (which has torch but not the safetensors package);
// FAILs the test when python3-torch is missing or the script fails.
void RunPythonScript(const std::string& dir, const std::string& script, const std::string& args) {
  const std::string script_path = dir + "/check.py";
  WriteFile(script_path, script);
  testing::RunPython(script_path + " " + args, dir + "/python.log");
}

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

TEST_CASE("Has, Names, Entry and TotalBytes describe the tensors; unknown names are NotFound",
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

// --- Malformed files: each error is InvalidArgument naming the file, the tensor and the fault.

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

// --- Cross-checks with Python (torch, without the safetensors package): live, or a golden file
// that Python wrote.

TEST_CASE("Python parsing our file with struct, json and torch.frombuffer sees the same values",
          "[safetensors][python]") {
  const std::string dir = testing::ScratchDir("st_python_reads");
  const at::Tensor base = torch::arange(-24, 24, torch::kFloat).reshape({4, 12}) / 4;  // exact
  const Named tensors = {{"f32", base},
                         {"bf16", base.to(torch::kBFloat16)},
                         {"f16", base.t().to(torch::kHalf)},
                         {"i64", torch::arange(-3, 3, torch::kLong) * int64_t{1000000000000}},
                         {"u8", torch::arange(0, 256, 51, torch::kByte)},
                         {"flags", torch::tensor({true, false, true})},
                         {"scalar", torch::tensor(-0.75f)}};
  REQUIRE(WriteSafetensorsFile(dir + "/ours.safetensors", tensors).ok());
  const std::string script = R"PY(
import json, struct, sys, torch
DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "I64": torch.int64,
      "U8": torch.uint8, "BOOL": torch.bool}
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert (8 + n) % 8 == 0, n
header = json.loads(raw[8:8 + n].decode("utf-8"))
assert header.pop("__metadata__") == {"format": "pt"}
data = bytearray(raw[8 + n:])
got = {}
for name, e in header.items():
    b, end = e["data_offsets"]
    t = torch.frombuffer(data[b:end], dtype=DT[e["dtype"]]) if end > b else torch.empty(0, dtype=DT[e["dtype"]])
    got[name] = t.reshape(e["shape"])
base = torch.arange(-24, 24, dtype=torch.float32).reshape(4, 12) / 4
want = {"f32": base, "bf16": base.to(torch.bfloat16), "f16": base.t().to(torch.float16),
        "i64": torch.arange(-3, 3, dtype=torch.int64) * 1000000000000,
        "u8": torch.arange(0, 256, 51, dtype=torch.uint8),
        "flags": torch.tensor([True, False, True]), "scalar": torch.tensor(-0.75)}
assert sorted(got) == sorted(want), (sorted(got), sorted(want))
for name, w in want.items():
    g = got[name]
    assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, g.shape, w.dtype, w.shape)
    assert torch.equal(g, w), (name, g, w)
print("ok")
)PY";
  RunPythonScript(dir, script, dir + "/ours.safetensors");
}

TEST_CASE("Our reader reads a file that Python wrote with struct, json and tensor bytes",
          "[safetensors]") {
  // A golden file: tests/golden/safetensors_python_writes.py wrote it and the values it holds.
  std::istringstream expected(testing::ReadGolden("safetensors_python_writes", 1));
  auto ckpt = OpenOk(testing::GoldenPath("safetensors_python_writes.safetensors"));
  CHECK(ckpt->Names().size() == 4);
  std::string line;
  int lines = 0;
  while (std::getline(expected, line)) {
    std::istringstream fields(line);
    std::string name;
    fields >> name;
    std::vector<double> values;
    for (double v; fields >> v;) values.push_back(v);
    INFO(name);
    const at::Tensor got = LoadOk(*ckpt, name).to(torch::kDouble).flatten();
    REQUIRE(got.numel() == static_cast<int64_t>(values.size()));
    CHECK(at::equal(got, torch::tensor(values, torch::kDouble)));
    ++lines;
  }
  CHECK(lines == 4);
  CHECK(ckpt->Entry("model.embed_tokens.weight")->shape == std::vector<int64_t>{5, 3});
  CHECK(ckpt->Entry("model.embed_tokens.weight")->dtype == StDType::kBF16);
}

}  // namespace
}  // namespace bitsweep::model

namespace bitsweep::model {
namespace {

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

}  // namespace
}  // namespace bitsweep::model
