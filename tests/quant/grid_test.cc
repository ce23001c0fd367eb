// Pins quant/grid.cc: the three quantiser primitives of docs/methods.md#grids on hand-computed
// rows, their code ranges and rounding, and QuantizedWeight / per-token fake quantisation.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/grid.h"
#include "quant/rtn.h"

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace {

using bitsweep::quant::DequantizeCodes;
using bitsweep::quant::FakeQuantize;
using bitsweep::quant::FakeQuantizePerToken;
using bitsweep::quant::FindParams;
using bitsweep::quant::GridKind;
using bitsweep::quant::GroupParams;
using bitsweep::quant::QuantGrid;
using bitsweep::quant::QuantizeCodes;
using bitsweep::quant::QuantizedWeight;

at::Tensor Rows(const std::vector<std::vector<float>>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t m = static_cast<int64_t>(rows[0].size());
  at::Tensor t = at::empty({n, m}, at::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < m; ++j) t[i][j] = rows[i][j];
  }
  return t;
}

at::Tensor Vec(const std::vector<float>& v) {
  return at::tensor(at::ArrayRef<float>(v), at::kFloat);
}

QuantGrid Grid(int bits, GridKind kind, int64_t group_size = -1) {
  QuantGrid g;
  g.bits = bits;
  g.kind = kind;
  g.group_size = group_size;
  return g;
}

// Random rows with the shapes that stress a min-max grid: mixed signs, all positive, all
// negative, all zero, one outlier, and tiny values.
at::Tensor StressRows() {
  at::manual_seed(7);
  at::Tensor w = at::randn({6, 64});
  w[1] = w[1].abs();
  w[2] = -w[2].abs();
  w[3].zero_();
  w[4][5] = 40.0f;
  w[5].mul_(1e-7);
  return w;
}

}  // namespace

TEST_CASE("maxq and minq give the integer code range of each grid kind", "[quant]") {
  CHECK(Grid(4, GridKind::kMinMaxWithZero).maxq() == 15);
  CHECK(Grid(4, GridKind::kMinMaxWithZero).minq() == 0);
  CHECK(Grid(4, GridKind::kMinMax).maxq() == 15);
  CHECK(Grid(1, GridKind::kMinMax).maxq() == 1);
  CHECK(Grid(4, GridKind::kSymAbsMax).maxq() == 7);
  CHECK(Grid(4, GridKind::kSymAbsMax).minq() == -7);
  CHECK(Grid(8, GridKind::kSymAbsMax).maxq() == 127);
}

TEST_CASE("kMinMaxWithZero matches hand-computed codes, scales and zero points", "[quant]") {
  const QuantGrid grid = Grid(2, GridKind::kMinMaxWithZero);  // maxq = 3
  const at::Tensor w = Rows({
      {-1.0f, 0.5f, 2.0f, 0.2f},     // range [-1, 2]: scale 1, zero 1
      {0.5f, 1.5f, 3.0f, 2.25f},     // all positive, range forced to [0, 3]: scale 1, zero 0
      {-3.0f, -1.5f, -0.75f, 0.0f},  // all negative, range [-3, 0]: scale 1, zero 3
      {0.0f, 0.0f, 0.0f, 0.0f},      // all zero: range [-1, 1], scale 2/3, zero round(1.5) = 2
  });
  const GroupParams p = FindParams(w, grid);
  CHECK(at::equal(p.scale, Vec({1.0f, 1.0f, 1.0f, 2.0f / 3.0f})));
  CHECK(at::equal(p.zero, Vec({1.0f, 0.0f, 3.0f, 2.0f})));
  const at::Tensor codes = QuantizeCodes(w, p, grid);
  // 0.5 and 1.5 and -1.5 are ties: round half to even gives 0, 2 and -2.
  CHECK(at::equal(codes, Rows({{0, 1, 3, 1}, {0, 2, 3, 2}, {0, 1, 2, 3}, {2, 2, 2, 2}})));
  CHECK(at::equal(DequantizeCodes(codes, p),
                  Rows({{-1, 0, 2, 0}, {0, 2, 3, 2}, {-3, -2, -1, 0}, {0, 0, 0, 0}})));
}

TEST_CASE("kMinMax matches hand-computed codes and does not force the range to contain zero",
          "[quant]") {
  const QuantGrid grid = Grid(2, GridKind::kMinMax);  // maxq = 3
  const at::Tensor w = Rows({
      {-1.0f, 0.5f, 2.0f, 0.2f},  // range [-1, 2]: scale 1, zero -round(-1) = 1
      {1.0f, 2.5f, 4.0f, 2.0f},   // range [1, 4]: scale 1, zero clamp(-1, 0, 3) = 0
      {0.0f, 0.0f, 0.0f, 0.0f},   // range clamped to 1e-5: zero 0, every code 0
  });
  const GroupParams p = FindParams(w, grid);
  CHECK(at::equal(p.scale.slice(0, 0, 2), Vec({1.0f, 1.0f})));
  CHECK(p.scale[2].item<float>() == static_cast<float>(1e-5f / 3.0f));
  CHECK(at::equal(p.zero, Vec({1.0f, 0.0f, 0.0f})));
  const at::Tensor codes = QuantizeCodes(w, p, grid);
  // Row 1: 4.0 would be code 4 and is clamped to maxq; 2.5 is a tie rounded to 2.
  CHECK(at::equal(codes, Rows({{0, 1, 3, 1}, {1, 2, 3, 2}, {0, 0, 0, 0}})));
  CHECK(at::equal(DequantizeCodes(codes, p), Rows({{-1, 0, 2, 0}, {1, 2, 3, 2}, {0, 0, 0, 0}})));
}

TEST_CASE("kSymAbsMax matches hand-computed codes with a zero point of 0", "[quant]") {
  const QuantGrid grid = Grid(3, GridKind::kSymAbsMax);  // qmax = 3
  const at::Tensor w = Rows({
      {-1.5f, 0.25f, 0.75f, -0.5f},  // abs-max 1.5: scale 0.5
      {6.0f, -3.0f, 1.0f, 5.0f},     // abs-max 6: scale 2
  });
  const GroupParams p = FindParams(w, grid);
  CHECK(at::equal(p.scale, Vec({0.5f, 2.0f})));
  CHECK(at::equal(p.zero, Vec({0.0f, 0.0f})));
  const at::Tensor codes = QuantizeCodes(w, p, grid);
  // w/scale = [-3, 0.5, 1.5, -1] and [3, -1.5, 0.5, 2.5]; ties go to even.
  CHECK(at::equal(codes, Rows({{-3, 0, 2, -1}, {3, -2, 0, 2}})));
  CHECK(at::equal(DequantizeCodes(codes, p), Rows({{-1.5f, 0.0f, 1.0f, -0.5f}, {6, -4, 0, 4}})));
}

TEST_CASE("QuantizeCodes rounds half to even", "[quant]") {
  const QuantGrid grid = Grid(2, GridKind::kMinMaxWithZero);
  // Range [0, 3] with maxq 3 gives scale exactly 1, so w/scale is w itself.
  const at::Tensor w = Rows({{0.0f, 3.0f, 0.5f, 1.5f, 2.5f, 0.49999997f, 2.5000002f}});
  const at::Tensor codes = QuantizeCodes(w, FindParams(w, grid), grid);
  CHECK(at::equal(codes, Rows({{0, 3, 0, 2, 2, 0, 3}})));
}

TEST_CASE("codes are integers in the grid's range for every kind and 1 to 8 bits", "[quant]") {
  const at::Tensor w = StressRows();
  for (GridKind kind : {GridKind::kMinMaxWithZero, GridKind::kMinMax, GridKind::kSymAbsMax}) {
    for (int bits = 1; bits <= 8; ++bits) {
      const QuantGrid grid = Grid(bits, kind);
      if (!grid.Validate(w.size(1)).ok()) continue;  // 1-bit symmetric is rejected
      const at::Tensor codes = QuantizeCodes(w, FindParams(w, grid), grid);
      INFO("kind " << static_cast<int>(kind) << " bits " << bits);
      CHECK(at::isfinite(codes).all().item<bool>());
      CHECK(at::equal(codes, at::round(codes)));
      CHECK(codes.min().item<float>() >= grid.minq());
      CHECK(codes.max().item<float>() <= grid.maxq());
      CHECK(at::isfinite(FakeQuantize(w, FindParams(w, grid), grid)).all().item<bool>());
    }
  }
}

TEST_CASE("kSymAbsMax never uses the code -2^(bits-1)", "[quant]") {
  at::manual_seed(3);
  // Rows whose largest magnitude is negative, so the lowest code is reached.
  const at::Tensor w = -at::rand({16, 128}) - 0.01;
  for (int bits = 2; bits <= 8; ++bits) {
    const QuantGrid grid = Grid(bits, GridKind::kSymAbsMax);
    const at::Tensor codes = QuantizeCodes(w, FindParams(w, grid), grid);
    INFO("bits " << bits);
    CHECK(codes.min().item<float>() == -static_cast<float>(grid.maxq()));
  }
}

TEST_CASE("an all-zero row uses the range [-1, 1] under kMinMaxWithZero", "[quant]") {
  for (int bits = 1; bits <= 8; ++bits) {
    const QuantGrid grid = Grid(bits, GridKind::kMinMaxWithZero);
    const at::Tensor w = at::zeros({1, 8});
    const GroupParams p = FindParams(w, grid);
    const float maxq = static_cast<float>(grid.maxq());
    INFO("bits " << bits);
    CHECK(p.scale.item<float>() == 2.0f / maxq);
    CHECK(p.zero.item<float>() == std::nearbyint(1.0f / (2.0f / maxq)));
    CHECK(at::equal(FakeQuantize(w, p, grid), w));
  }
}

TEST_CASE("FakeQuantize equals DequantizeCodes of QuantizeCodes and keeps zero exact",
          "[quant]") {
  const at::Tensor w = StressRows();
  for (GridKind kind : {GridKind::kMinMaxWithZero, GridKind::kMinMax, GridKind::kSymAbsMax}) {
    const QuantGrid grid = Grid(4, kind);
    const GroupParams p = FindParams(w, grid);
    CHECK(at::equal(FakeQuantize(w, p, grid), DequantizeCodes(QuantizeCodes(w, p, grid), p)));
  }
  // Grids that contain 0 reproduce it exactly.
  const QuantGrid grid = Grid(3, GridKind::kMinMaxWithZero);
  at::Tensor w0 = w.clone();
  w0.select(1, 0).zero_();
  CHECK(at::equal(FakeQuantize(w0, FindParams(w0, grid), grid).select(1, 0), w0.select(1, 0)));
}

TEST_CASE("QuantizedWeight::Dequantize looks up each column's group through g_idx", "[quant]") {
  QuantizedWeight q;
  q.grid = Grid(2, GridKind::kMinMaxWithZero);
  q.codes = at::tensor({0, 1, 2, 3, 3, 2, 1, 0}, at::kInt).view({2, 4});
  q.scales = Rows({{1.0f, 0.5f}, {2.0f, 0.25f}});
  q.zeros = Rows({{1.0f, 2.0f}, {0.0f, 3.0f}});
  q.g_idx = at::tensor({1, 0, 1, 0}, at::kInt);
  // Row 0: group 1 (0.5, 2), group 0 (1, 1), ...; row 1: group 1 (0.25, 3), group 0 (2, 0).
  const at::Tensor expected = Rows({{0.5f * (0 - 2), 1.0f * (1 - 1), 0.5f * (2 - 2), 1.0f * (3 - 1)},
                                    {0.25f * (3 - 3), 2.0f * (2 - 0), 0.25f * (1 - 3), 2.0f * (0 - 0)}});
  CHECK(at::equal(q.Dequantize(), expected));
}

TEST_CASE("QuantizedWeight::Dequantize equals FakeQuantize of every group", "[quant]") {
  const at::Tensor w = at::randn({8, 96});
  for (int64_t group : {int64_t{-1}, int64_t{32}}) {
    for (GridKind kind : {GridKind::kMinMaxWithZero, GridKind::kMinMax, GridKind::kSymAbsMax}) {
      const QuantGrid grid = Grid(3, kind, group);
      auto q = bitsweep::quant::RtnQuantize(w, grid);
      REQUIRE(q.ok());
      const int64_t g = group == -1 ? 96 : group;
      at::Tensor expected = at::empty_like(w);
      for (int64_t c = 0; c < 96; c += g) {
        const at::Tensor slice = w.slice(1, c, c + g);
        expected.slice(1, c, c + g).copy_(FakeQuantize(slice, FindParams(slice, grid), grid));
      }
      INFO("group " << group << " kind " << static_cast<int>(kind));
      CHECK(at::equal(q->Dequantize(), expected));
    }
  }
}

TEST_CASE("FakeQuantizePerToken scales every token by its own abs-max", "[quant]") {
  // bits 3: qmax 3. Token 0: abs-max 3, scale 1; token 1: abs-max 6, scale 2; token 2: zero.
  at::Tensor x = at::zeros({1, 3, 4});
  x[0][0] = Vec({3.0f, -1.5f, 0.75f, 0.0f});
  x[0][1] = Vec({6.0f, 1.0f, -3.0f, 2.9f});
  const at::Tensor y = FakeQuantizePerToken(x, 3);
  CHECK(y.sizes() == x.sizes());
  CHECK(at::equal(y[0][0], Vec({3.0f, -2.0f, 1.0f, 0.0f})));
  CHECK(at::equal(y[0][1], Vec({6.0f, 0.0f, -4.0f, 2.0f})));
  CHECK(at::equal(y[0][2], Vec({0.0f, 0.0f, 0.0f, 0.0f})));
}

TEST_CASE("FakeQuantizePerToken is independent across tokens and keeps the input dtype",
          "[quant]") {
  at::manual_seed(11);
  const at::Tensor x = at::randn({2, 5, 16});
  const at::Tensor y = FakeQuantizePerToken(x, 8);
  at::Tensor big = x.clone();
  big[1][4].mul_(1000);  // one loud token must not change any other token's grid
  const at::Tensor y_big = FakeQuantizePerToken(big, 8);
  CHECK(at::equal(y_big.slice(1, 0, 4), y.slice(1, 0, 4)));
  CHECK(at::equal(y_big[0], y[0]));
  // Each token on its own, as a [1, channels] row of the symmetric weight grid.
  const QuantGrid grid = Grid(8, GridKind::kSymAbsMax);
  const at::Tensor tokens = x.reshape({-1, 16});
  for (int64_t t = 0; t < tokens.size(0); ++t) {
    const at::Tensor row = tokens.slice(0, t, t + 1);
    CHECK(at::equal(y.reshape({-1, 16})[t], FakeQuantize(row, FindParams(row, grid), grid)[0]));
  }
  const at::Tensor y_bf16 = FakeQuantizePerToken(x.to(at::kBFloat16), 8);
  CHECK(y_bf16.scalar_type() == at::kBFloat16);
}

TEST_CASE("QuantGrid::Validate accepts 1 to 8 bits and group sizes dividing in_features",
          "[quant]") {
  for (int bits = 1; bits <= 8; ++bits) {
    CHECK(Grid(bits, GridKind::kMinMaxWithZero).Validate(256).ok());
    CHECK(Grid(bits, GridKind::kMinMax, 128).Validate(256).ok());
  }
  CHECK(Grid(2, GridKind::kSymAbsMax).Validate(256).ok());
  CHECK(Grid(4, GridKind::kMinMaxWithZero, 256).Validate(256).ok());
}

TEST_CASE("QuantGrid::Validate errors name the parameter", "[quant]") {
  auto expect_error = [](const QuantGrid& grid, int64_t in, const std::string& name) {
    const auto s = grid.Validate(in);
    INFO(s.ToString());
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(s.message()), Catch::Contains(name));
  };
  expect_error(Grid(0, GridKind::kMinMaxWithZero), 64, "bits");
  expect_error(Grid(9, GridKind::kMinMaxWithZero), 64, "bits");
  expect_error(Grid(1, GridKind::kSymAbsMax), 64, "bits");
  expect_error(Grid(4, GridKind::kMinMaxWithZero, 48), 64, "group_size");
  expect_error(Grid(4, GridKind::kMinMaxWithZero, 0), 64, "group_size");
  expect_error(Grid(4, GridKind::kMinMaxWithZero, -2), 64, "group_size");
  expect_error(Grid(4, GridKind::kMinMaxWithZero), 0, "in_features");
}
