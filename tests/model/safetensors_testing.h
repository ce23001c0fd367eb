// Helpers shared by the safetensors tests (tests/model/safetensors*_test.cc): hand-made files
// written independently of the writer under test, and checks that fail the calling test.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/safetensors.h"

namespace bitsweep::model::safetensors_test {

using Named = std::vector<std::pair<std::string, at::Tensor>>;

std::string ReadFile(const std::string& path);
// REQUIREs that the bytes were written.
void WriteFile(const std::string& path, const std::string& bytes);
// `v` as 8 little-endian bytes.
std::string U64Le(uint64_t v);
// The raw bytes of a tensor in row-major order.
std::string Bytes(const at::Tensor& t);
// A safetensors file built by hand, independently of the writer under test: 8-byte
// little-endian length, the JSON header (space-padded to 8-byte alignment when `pad`), the data.
std::string HandMade(std::string header, const std::string& data, bool pad = true);
// HandMade written to `dir`/t.safetensors; returns that path.
std::string WriteHandMade(const std::string& dir, const std::string& header,
                          const std::string& data, bool pad = true);
// Checkpoint::Open and Checkpoint::Load that REQUIRE success.
std::unique_ptr<Checkpoint> OpenOk(const std::string& path);
at::Tensor LoadOk(const Checkpoint& ckpt, const std::string& name);
// The message of the InvalidArgument error that opening `path` must produce.
std::string OpenError(const std::string& path);
bool BitIdentical(const at::Tensor& a, const at::Tensor& b);
// The format's dtype names, spelled out independently of the code under test.
std::string ExpectedDtypeName(at::ScalarType type);
// The file backing the mapping that contains `p`, from /proc/self/maps ("" when none).
std::string MappedPathOf(const void* p);
// Whether `path` is mapped into this process.
bool IsMapped(const std::string& path);
// One tensor of every supported dtype, with values that catch byte-order and rounding mistakes.
Named AllDtypes();
// Runs `script` with Debian's python3 (which has torch but not the safetensors package);
// FAILs the test when python3-torch is missing or the script fails.
void RunPythonScript(const std::string& dir, const std::string& script, const std::string& args);

}  // namespace bitsweep::model::safetensors_test
