// Pins quant/rtn.cc: RTN equals a plain loop over rows and groups, its stored codes dequantise to
// its output, and its error falls with the bit-width.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/rtn.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

namespace {

using bitsweep::quant::GridKind;
using bitsweep::quant::QuantGrid;
using bitsweep::quant::QuantizedWeight;
using bitsweep::quant::RtnQuantize;

QuantGrid Grid(int bits, int64_t group_size, GridKind kind = GridKind::kMinMaxWithZero) {
  QuantGrid g;
  g.bits = bits;
  g.group_size = group_size;
  g.kind = kind;
  return g;
}

at::Tensor RandomWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor w = at::randn({out, in}) * 0.02;
  w[0].abs_();           // a row whose range is forced to contain 0
  w[1].zero_();          // an all-zero row
  w[2][3] = 0.5f;        // an outlier
  return w;
}

// docs/methods.md#grids, element by element on plain floats: the independent computation RTN must
// reproduce exactly. Returns codes, and per-(row, group) scale and zero.
struct LoopResult {
  std::vector<int32_t> codes;  // [out * in]
  std::vector<float> scale;    // [out * n_groups]
  std::vector<float> zero;
};

LoopResult LoopRtn(const at::Tensor& w, const QuantGrid& grid) {
  const int64_t out = w.size(0), in = w.size(1);
  const int64_t group = grid.group_size == -1 ? in : grid.group_size;
  const int64_t n_groups = in / group;
  const auto a = w.accessor<float, 2>();
  const float maxq = static_cast<float>(grid.maxq());
  LoopResult r;
  r.codes.resize(out * in);
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t g = 0; g < n_groups; ++g) {
      float lo = a[i][g * group], hi = a[i][g * group], amax = 0;
      for (int64_t j = g * group; j < (g + 1) * group; ++j) {
        lo = std::min(lo, a[i][j]);
        hi = std::max(hi, a[i][j]);
        amax = std::max(amax, std::fabs(a[i][j]));
      }
      float scale = 0, zero = 0, qmin = 0;
      switch (grid.kind) {
        case GridKind::kMinMaxWithZero:
          lo = std::min(lo, 0.0f);
          hi = std::max(hi, 0.0f);
          if (lo == 0 && hi == 0) {
            lo = -1;
            hi = 1;
          }
          scale = (hi - lo) / maxq;
          zero = std::nearbyint(-lo / scale);
          break;
        case GridKind::kMinMax:
          scale = std::max(hi - lo, 1e-5f) / maxq;
          zero = std::min(std::max(-std::nearbyint(lo / scale), 0.0f), maxq);
          break;
        case GridKind::kSymAbsMax:
          scale = std::max(amax, 1e-5f) / maxq;
          qmin = -maxq;
          break;
      }
      r.scale.push_back(scale);
      r.zero.push_back(zero);
      for (int64_t j = g * group; j < (g + 1) * group; ++j) {
        const float q = std::nearbyint(a[i][j] / scale) + zero;
        r.codes[i * in + j] = static_cast<int32_t>(std::min(std::max(q, qmin), maxq));
      }
    }
  }
  return r;
}

template <typename T>
std::vector<T> ToVector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

double RelativeError(const at::Tensor& w, const at::Tensor& w_hat) {
  return (w - w_hat).norm().item<double>() / w.norm().item<double>();
}

}  // namespace

TEST_CASE("RTN per channel and with groups of 128 equals an independent loop computation",
          "[quant]") {
  const at::Tensor w = RandomWeight(16, 384, 1);
  for (int64_t group : {int64_t{-1}, int64_t{128}}) {
    for (GridKind kind : {GridKind::kMinMaxWithZero, GridKind::kMinMax, GridKind::kSymAbsMax}) {
      for (int bits : {2, 3, 4, 8}) {
        const QuantGrid grid = Grid(bits, group, kind);
        auto q = RtnQuantize(w, grid);
        REQUIRE(q.ok());
        const LoopResult expected = LoopRtn(w, grid);
        INFO("group " << group << " kind " << static_cast<int>(kind) << " bits " << bits);
        CHECK(q->codes.scalar_type() == at::kInt);
        CHECK(ToVector<int32_t>(q->codes) == expected.codes);
        CHECK(ToVector<float>(q->scales) == expected.scale);
        CHECK(ToVector<float>(q->zeros) == expected.zero);
        const int64_t n_groups = group == -1 ? 1 : 384 / group;
        CHECK(q->scales.sizes() == at::IntArrayRef({16, n_groups}));
        CHECK(at::equal(q->g_idx, at::arange(384, at::kInt).div(group == -1 ? 384 : group,
                                                                "floor")));
      }
    }
  }
}

TEST_CASE("RTN dequantised weights equal the dequantisation of its stored codes", "[quant]") {
  const at::Tensor w = RandomWeight(8, 256, 2);
  for (int64_t group : {int64_t{-1}, int64_t{128}, int64_t{32}}) {
    auto q = RtnQuantize(w, Grid(4, group));
    REQUIRE(q.ok());
    const at::Tensor deq = q->Dequantize();
    const auto codes = q->codes.accessor<int32_t, 2>();
    const auto scales = q->scales.accessor<float, 2>();
    const auto zeros = q->zeros.accessor<float, 2>();
    const auto g_idx = q->g_idx.accessor<int32_t, 1>();
    const auto d = deq.accessor<float, 2>();
    int64_t mismatches = 0;
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t j = 0; j < 256; ++j) {
        const int32_t g = g_idx[j];
        const float expected = scales[i][g] * (static_cast<float>(codes[i][j]) - zeros[i][g]);
        mismatches += d[i][j] != expected;
      }
    }
    INFO("group " << group);
    CHECK(mismatches == 0);
  }
}

TEST_CASE("RTN error shrinks as the bit-width grows from 1 to 8", "[quant]") {
  const at::Tensor w = RandomWeight(64, 256, 3);
  for (int64_t group : {int64_t{-1}, int64_t{128}}) {
    double previous = 1e30;
    for (int bits = 1; bits <= 8; ++bits) {
      auto q = RtnQuantize(w, Grid(bits, group));
      REQUIRE(q.ok());
      const double err = RelativeError(w, q->Dequantize());
      INFO("group " << group << " bits " << bits << " relative error " << err);
      CHECK(err < previous);
      previous = err;
    }
  }
}

TEST_CASE("RTN quantises reduced-precision weights through fp32", "[quant]") {
  const at::Tensor w = RandomWeight(8, 128, 4).to(at::kBFloat16);
  auto q = RtnQuantize(w, Grid(4, 64));
  REQUIRE(q.ok());
  auto q32 = RtnQuantize(w.to(at::kFloat), Grid(4, 64));
  REQUIRE(q32.ok());
  CHECK(at::equal(q->codes, q32->codes));
  CHECK(q->Dequantize().scalar_type() == at::kFloat);
}

TEST_CASE("RTN rejects bad inputs with errors naming the parameter", "[quant]") {
  auto expect_error = [](const at::Tensor& w, const QuantGrid& grid, const std::string& name) {
    auto q = RtnQuantize(w, grid);
    REQUIRE_FALSE(q.ok());
    INFO(q.status().ToString());
    CHECK(q.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(q.status().message()), Catch::Contains(name));
  };
  expect_error(at::randn({2, 8, 64}), Grid(4, -1), "w must");
  expect_error(at::randn({64}), Grid(4, -1), "w must");
  expect_error(at::randn({8, 64}), Grid(9, -1), "bits");
  expect_error(at::randn({8, 64}), Grid(0, -1), "bits");
  expect_error(at::randn({8, 64}), Grid(4, 48), "group_size");
  expect_error(at::ones({8, 64}, at::kInt), Grid(4, -1), "w must");
}
