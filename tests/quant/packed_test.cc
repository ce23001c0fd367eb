// The packed GPTQ layout: bit-exact round trips, the AutoGPTQ word layout, and refusals.
#include "quant/packed.h"

#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace {

using bitsweep::quant::GridKind;
using bitsweep::quant::PackedWeight;
using bitsweep::quant::QuantizedWeight;

QuantizedWeight RandomWeight(int bits, int64_t out, int64_t in, int64_t group, uint64_t seed) {
  at::manual_seed(seed);
  const int64_t maxq = (int64_t{1} << bits) - 1;
  const int64_t n_groups = group == -1 ? 1 : in / group;
  QuantizedWeight w;
  w.grid.bits = bits;
  w.grid.group_size = group;
  w.grid.kind = GridKind::kMinMaxWithZero;
  w.codes = at::randint(0, maxq + 1, {out, in}, at::kInt);
  w.zeros = at::randint(0, maxq + 1, {out, n_groups}, at::kFloat);
  // Both ends of the zero range, where v1's "zero - 1" wraps.
  w.zeros.index_put_({0, 0}, 0.0);
  w.zeros.index_put_({1, 0}, static_cast<double>(maxq));
  w.scales = at::rand({out, n_groups}, at::kFloat) * 0.1 + 1e-3;
  // act-order style g_idx: a permutation of the contiguous groups.
  at::Tensor g = at::arange(in, at::kLong).div(group == -1 ? in : group, "floor");
  w.g_idx = g.index_select(0, at::randperm(in, at::kLong)).to(at::kInt);
  return w;
}

// AutoGPTQ's QuantLinear.pack() loop over the input rows of intweight [in, out], transcribed
// word by word (independent of the bit-stream formulation in quant/packed.cc).
std::vector<uint32_t> AutoGptqPackColumn(const std::vector<uint32_t>& v, int bits) {
  std::vector<uint32_t> q(v.size() * bits / 32, 0);
  size_t i = 0, row = 0;
  while (row < q.size()) {
    if (bits != 3) {
      for (size_t j = i; j < i + 32 / bits; ++j) q[row] |= v[j] << (bits * (j - i));
      i += 32 / bits;
      row += 1;
    } else {
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i));
      i += 10;
      q[row] |= v[i] << 30;
      row += 1;
      q[row] |= (v[i] >> 2) & 1;
      i += 1;
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i) + 1);
      i += 10;
      q[row] |= v[i] << 31;
      row += 1;
      q[row] |= (v[i] >> 1) & 0x3;
      i += 1;
      for (size_t j = i; j < i + 10; ++j) q[row] |= v[j] << (3 * (j - i) + 2);
      i += 10;
      row += 1;
    }
  }
  return q;
}

}  // namespace

TEST_CASE("Packing round-trips codes, zeros and g_idx bit-exactly at 2, 3, 4 and 8 bits, in the shapes PackedShapesOf plans",
          "[quant][packed]") {
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t group : {int64_t{-1}, int64_t{32}}) {
      INFO("bits " << bits << " group " << group);
      QuantizedWeight w = RandomWeight(bits, 64, 128, group, bits * 10 + (group > 0));
      auto p = bitsweep::quant::PackGptq(w);
      REQUIRE(p.ok());
      CHECK(p->qweight.scalar_type() == at::kInt);
      CHECK(p->qweight.sizes().vec() == std::vector<int64_t>{128 * bits / 32, 64});
      CHECK(p->qzeros.sizes().vec() ==
            std::vector<int64_t>{w.scales.size(1), 64 * bits / 32});
      CHECK(p->scales.scalar_type() == at::kHalf);
      // The shapes a streamed writer lays out before packing are the packed ones.
      const bitsweep::quant::PackedShapes shapes = bitsweep::quant::PackedShapesOf(w);
      CHECK(shapes.qweight == p->qweight.sizes().vec());
      CHECK(shapes.qzeros == p->qzeros.sizes().vec());
      CHECK(shapes.scales == p->scales.sizes().vec());
      CHECK(shapes.g_idx == p->g_idx.sizes().vec());
      auto u = bitsweep::quant::UnpackGptq(*p, 64, 128);
      REQUIRE(u.ok());
      CHECK(at::equal(u->codes, w.codes));
      CHECK(at::equal(u->zeros, w.zeros));
      CHECK(at::equal(u->g_idx, w.g_idx));
      CHECK(at::equal(u->scales, w.scales.to(at::kHalf).to(at::kFloat)));
    }
  }
}

TEST_CASE("Packed words match AutoGPTQ's pack loop, the 3-bit word-straddling layout included",
          "[quant][packed]") {
  for (int bits : {2, 3, 4, 8}) {
    INFO("bits " << bits);
    QuantizedWeight w = RandomWeight(bits, 32, 96, -1, 7 + bits);
    auto p = bitsweep::quant::PackGptq(w);
    REQUIRE(p.ok());
    at::Tensor codes = w.codes.to(at::kLong);
    for (int64_t col : {0, 5, 31}) {
      std::vector<uint32_t> v;
      for (int64_t r = 0; r < 96; ++r) v.push_back(static_cast<uint32_t>(codes[col][r].item<int64_t>()));
      const std::vector<uint32_t> want = AutoGptqPackColumn(v, bits);
      for (size_t k = 0; k < want.size(); ++k) {
        CHECK(static_cast<uint32_t>(p->qweight[k][col].item<int32_t>()) == want[k]);
      }
    }
  }
}

TEST_CASE("Packing refuses what the GPTQ layout cannot hold, naming why", "[quant][packed]") {
  std::string why;
  QuantizedWeight w5 = RandomWeight(4, 32, 64, -1, 1);
  w5.grid.bits = 5;
  CHECK_FALSE(bitsweep::quant::CanPack(w5, &why));
  CHECK_THAT(why, Catch::Contains("5-bit"));
  QuantizedWeight sym = RandomWeight(4, 32, 64, -1, 1);
  sym.grid.kind = GridKind::kSymAbsMax;
  CHECK_FALSE(bitsweep::quant::CanPack(sym, &why));
  QuantizedWeight odd = RandomWeight(3, 32, 48, -1, 1);
  CHECK_FALSE(bitsweep::quant::CanPack(odd, &why));
  CHECK_THAT(why, Catch::Contains("multiples of 32"));
  CHECK_FALSE(bitsweep::quant::PackGptq(odd).ok());

  auto p = bitsweep::quant::PackGptq(RandomWeight(4, 32, 64, 16, 2));
  REQUIRE(p.ok());
  PackedWeight bad = *p;
  bad.qzeros = bad.qzeros.narrow(0, 0, 2);
  auto u = bitsweep::quant::UnpackGptq(bad, 32, 64);
  REQUIRE_FALSE(u.ok());
  CHECK_THAT(std::string(u.status().message()), Catch::Contains("qzeros"));
  bad = *p;
  bad.g_idx = at::full({64}, 9, at::kInt);
  u = bitsweep::quant::UnpackGptq(bad, 32, 64);
  REQUIRE_FALSE(u.ok());
  CHECK_THAT(std::string(u.status().message()), Catch::Contains("g_idx"));
}

TEST_CASE("Narrowed codes pack to the same words, over more than one slice of output channels",
          "[quant][packed]") {
  // 2,112 output channels: the packer's slices of 1,024 end in a partial one.
  for (int bits : {3, 4, 8}) {
    INFO("bits " << bits);
    QuantizedWeight wide = RandomWeight(bits, 2112, 96, 32, 40 + bits);
    QuantizedWeight narrow = wide;
    narrow.NarrowCodes();
    CHECK(narrow.codes.scalar_type() == at::kByte);
    CHECK(at::equal(narrow.codes.to(at::kInt), wide.codes));
    CHECK(at::equal(narrow.Dequantize(), wide.Dequantize()));
    auto p_wide = bitsweep::quant::PackGptq(wide);
    auto p_narrow = bitsweep::quant::PackGptq(narrow);
    REQUIRE(p_wide.ok());
    REQUIRE(p_narrow.ok());
    CHECK(at::equal(p_wide->qweight, p_narrow->qweight));
    auto u = bitsweep::quant::UnpackGptq(*p_narrow, 2112, 96);
    REQUIRE(u.ok());
    CHECK(at::equal(u->codes, wide.codes));
    // Channel 1,500 (in the second slice) against AutoGPTQ's loop.
    const at::Tensor col = wide.codes[1500].to(at::kLong);
    std::vector<uint32_t> v;
    for (int64_t r = 0; r < 96; ++r) v.push_back(static_cast<uint32_t>(col[r].item<int64_t>()));
    const std::vector<uint32_t> want = AutoGptqPackColumn(v, bits);
    for (size_t k = 0; k < want.size(); ++k) {
      CHECK(static_cast<uint32_t>(p_narrow->qweight[k][1500].item<int32_t>()) == want[k]);
    }
  }
}

TEST_CASE("Symmetric codes narrow to int8 and keep their values", "[quant][packed]") {
  QuantizedWeight w;
  w.grid.bits = 8;
  w.grid.group_size = -1;
  w.grid.kind = GridKind::kSymAbsMax;
  w.codes = at::randint(-127, 128, {8, 16}, at::kInt);
  w.scales = at::rand({8, 1}, at::kFloat);
  w.zeros = at::zeros({8, 1}, at::kFloat);
  w.g_idx = at::zeros({16}, at::kInt);
  const at::Tensor before = w.codes.clone();
  w.NarrowCodes();
  CHECK(w.codes.scalar_type() == at::kChar);
  CHECK(at::equal(w.codes.to(at::kInt), before));
}
