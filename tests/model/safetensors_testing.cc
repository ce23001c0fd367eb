#include "tests/model/safetensors_testing.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "tests/testing/python.h"

namespace bitsweep::model::safetensors_test {

namespace fs = std::filesystem;

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
std::string HandMade(std::string header, const std::string& data, bool pad) {
  if (pad) header.append((8 - (8 + header.size()) % 8) % 8, ' ');
  return U64Le(header.size()) + header + data;
}

std::string WriteHandMade(const std::string& dir, const std::string& header,
                          const std::string& data, bool pad) {
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

}  // namespace bitsweep::model::safetensors_test
