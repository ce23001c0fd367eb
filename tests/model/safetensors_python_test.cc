// Cross-checks of the safetensors reader and writer with Python (torch, without the safetensors
// package): live, or a golden file that Python wrote.
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

#include "tests/testing/golden.h"
#include "tests/testing/python.h"

#include "tests/model/safetensors_testing.h"
#include "tests/testing/paths.h"

namespace bitsweep::model::safetensors_test {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

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
}  // namespace bitsweep::model::safetensors_test
