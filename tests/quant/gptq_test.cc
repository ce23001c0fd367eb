// Pins quant/gptq.cc: the Hessian accumulator, the blocked GPTQ against the column-by-column
// reference (quant/reference.h), the properties that hold exactly (identity or diagonal H,
// dead columns, column order under act_order), the output-error gain over RTN on correlated
// inputs, and the errors.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/gptq.h"
#include "quant/reference.h"
#include "quant/rtn.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using bitsweep::quant::GptqOptions;
using bitsweep::quant::GptqQuantize;
using bitsweep::quant::GptqQuantizeRef;
using bitsweep::quant::GptqResult;
using bitsweep::quant::GridKind;
using bitsweep::quant::HessianAccumulator;
using bitsweep::quant::QuantGrid;
using bitsweep::quant::QuantizedWeight;
using bitsweep::quant::RtnQuantize;

// Blocked vs reference: both run in fp32 but sum each column's error contributions in a
// different order (matmuls over lazy blocks vs one rank-1 update per column), so a weight that
// lands within rounding noise of a grid midpoint may take the neighbouring code, and the
// difference then propagates to later columns of that row. These bound that effect.
constexpr double kRefMaxCodeMismatchFraction = 2e-3;  // codes differing by any amount
constexpr double kRefDequantRelTol = 2e-3;            // ||Q - Q_ref||_F / ||Q_ref||_F
constexpr double kRefLossRelTol = 1e-4;               // |loss - loss_ref| / loss_ref
// (Measured on this machine: no code differs and the rest agree to ~3e-7. A wrong semantic, e.g.
// group params found on the block-updated W or percdamp off by 10%, changes 10-30% of codes.)
// Accumulated (2/N) X^T X against one fp32 matmul: a few roundings per entry, relative to max|H|.
constexpr double kHessianRelTol = 1e-5;
// With H = I every diagonal of Hinv is 1/sqrt(1 + percdamp), so fasterquant's loss is exactly
// (1 + percdamp)/2 * ||W - Q||^2 up to fp32 summation order.
constexpr double kIdentityLossRelTol = 1e-5;
// At 8 bits every column of an i.i.d. weight keeps all but a few per mille of its norm; a column
// paired with another column's codes would be off by about sqrt(2).
constexpr double kEightBitColumnRelTol = 0.05;

QuantGrid Grid(int bits, int64_t group_size, GridKind kind = GridKind::kMinMaxWithZero) {
  QuantGrid g;
  g.bits = bits;
  g.group_size = group_size;
  g.kind = kind;
  return g;
}

GptqOptions Options(int bits, int64_t group_size, int64_t blocksize = 128, bool act_order = false,
                    bool static_groups = false) {
  GptqOptions o;
  o.grid = Grid(bits, group_size);
  o.blocksize = blocksize;
  o.act_order = act_order;
  o.static_groups = static_groups;
  return o;
}

// Correlated calibration inputs X = Z A: [tokens, in], a random mixing of i.i.d. features
// plus per-feature scales, so that diag(H) varies and act_order has something to sort.
at::Tensor CorrelatedInputs(int64_t tokens, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  const at::Tensor z = at::randn({tokens, in});
  const at::Tensor a = at::randn({in, in}) / std::sqrt(static_cast<double>(in));
  const at::Tensor feature_scale = at::rand({in}) * 2 + 0.1;
  return at::mm(z, a) * feature_scale;
}

at::Tensor HessianOf(const at::Tensor& x) {
  HessianAccumulator acc(x.size(-1));
  acc.Add(x, 1);
  return acc.H();
}

at::Tensor RandomWeight(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  return at::randn({out, in}) * 0.05;
}

GptqResult Run(const at::Tensor& w, const at::Tensor& h, const GptqOptions& o) {
  auto r = GptqQuantize(w, h, o);
  INFO((r.ok() ? std::string("ok") : r.status().ToString()));
  REQUIRE(r.ok());
  return *std::move(r);
}

QuantizedWeight Rtn(const at::Tensor& w, const QuantGrid& grid) {
  auto r = RtnQuantize(w, grid);
  REQUIRE(r.ok());
  return *std::move(r);
}

// Codes compared by value: the driver stores them narrowed (QuantizedWeight::NarrowCodes).
void CheckSameQuantizedWeight(const QuantizedWeight& a, const QuantizedWeight& b) {
  CHECK(at::equal(a.codes.to(at::kInt), b.codes.to(at::kInt)));
  CHECK(at::equal(a.scales, b.scales));
  CHECK(at::equal(a.zeros, b.zeros));
  CHECK(at::equal(a.g_idx, b.g_idx));
  CHECK(at::equal(a.Dequantize(), b.Dequantize()));
}

// ||(W - Q) X^T||_F: the layer-output error GPTQ minimises.
double OutputError(const at::Tensor& w, const at::Tensor& q, const at::Tensor& x) {
  return at::mm(w - q, x.t()).norm().item<double>();
}

}  // namespace

TEST_CASE("HessianAccumulator equals (2/N) X^T X over N sequences, added in one or several calls",
          "[quant]") {
  at::manual_seed(5);
  const at::Tensor x1 = at::randn({1, 40, 24});  // one sequence of 40 tokens
  const at::Tensor x2 = at::randn({2, 30, 24});  // a batch of two sequences
  const at::Tensor x3 = at::randn({25, 24});     // one sequence as [tokens, in]
  auto direct = [](const at::Tensor& x, int64_t n) {
    const at::Tensor flat = x.reshape({-1, 24}).to(at::kDouble);
    return (at::mm(flat.t(), flat) * (2.0 / n)).to(at::kFloat);
  };
  auto rel_diff = [](const at::Tensor& a, const at::Tensor& b) {
    return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
  };

  HessianAccumulator one(24);
  one.Add(x1, 1);
  CHECK(one.sequences() == 1);
  CHECK(rel_diff(one.H(), direct(x1, 1)) < kHessianRelTol);

  HessianAccumulator several(24);
  several.Add(x1, 1);
  several.Add(x2, 2);
  several.Add(x3, 1);
  CHECK(several.sequences() == 4);
  const at::Tensor all = at::cat({x1.reshape({-1, 24}), x2.reshape({-1, 24}), x3});
  CHECK(rel_diff(several.H(), direct(all, 4)) < kHessianRelTol);
  CHECK(several.H().scalar_type() == at::kFloat);
}

TEST_CASE("HessianAccumulator keeps few rows instead of H and gives the same H bit for bit",
          "[quant]") {
  // add_batch as GPTQ writes it, folded at every call: the reference for the kept rows' replay.
  const int64_t in = 64;
  auto eager = [in](const std::vector<std::pair<at::Tensor, int64_t>>& adds) {
    at::Tensor h = at::zeros({in, in});
    int64_t n = 0;
    for (const auto& [x, seq] : adds) {
      h.mul_(static_cast<double>(n) / static_cast<double>(n + seq));
      n += seq;
      const at::Tensor scaled = x.reshape({-1, in}).to(at::kFloat) * std::sqrt(2.0 / n);
      h.addmm_(scaled.t(), scaled);
    }
    return h;
  };
  at::manual_seed(17);
  // 10 + 20 rows stay kept (30 <= 64); 50 more pass in_features, and H is folded from then on.
  const std::vector<std::pair<at::Tensor, int64_t>> adds = {
      {at::randn({1, 10, in}), 1}, {at::randn({2, 10, in}), 2}, {at::randn({1, 50, in}), 1},
      {at::randn({1, 7, in}), 1}};
  HessianAccumulator acc(in);
  acc.Add(adds[0].first, adds[0].second);
  acc.Add(adds[1].first, adds[1].second);
  CHECK(acc.held_bytes() == 30 * in * 4);  // the rows, not the 64 x 64 H
  CHECK(acc.sequences() == 3);
  SECTION("read while only rows are kept") {
    CHECK(at::equal(acc.H(), eager({adds[0], adds[1]})));
    CHECK(acc.held_bytes() == in * in * 4);
  }
  SECTION("kept rows folded once in_features is passed, later adds folded at once") {
    // The caller's tensor changing after Add must not change H: Add kept a copy.
    at::Tensor reused = adds[2].first.clone();
    acc.Add(reused, 1);
    reused.zero_();
    CHECK(acc.held_bytes() == in * in * 4);
    acc.Add(adds[3].first, adds[3].second);
    CHECK(acc.sequences() == 5);
    CHECK(at::equal(acc.H(), eager(adds)));
    CHECK(at::equal(acc.Release(), eager(adds)));
  }
  SECTION("released without being read") {
    CHECK(at::equal(acc.Release(), eager({adds[0], adds[1]})));
  }
}

TEST_CASE("HessianAccumulator rejects inputs of the wrong width, naming the argument", "[quant]") {
  HessianAccumulator acc(8);
  CHECK_THROWS_WITH(acc.Add(at::randn({4, 7})), Catch::Contains("x must"));
  CHECK_THROWS_WITH(acc.Add(at::randn({4, 8}), 0), Catch::Contains("sequences"));
  CHECK(acc.sequences() == 0);
  CHECK(acc.H().abs().max().item<float>() == 0);
}

TEST_CASE("GPTQ with H = identity equals RTN exactly", "[quant]") {
  // With Hinv diagonal no error propagates. act_order is included: every diag(H) ties, and the
  // stable sort keeps the original column order.
  const at::Tensor w = RandomWeight(24, 256, 6);
  const at::Tensor h = at::eye(256);
  for (int64_t group : {int64_t{-1}, int64_t{32}, int64_t{128}}) {
    for (int64_t blocksize : {int64_t{32}, int64_t{128}}) {
      for (int bits : {2, 4}) {
        for (bool act_order : {false, true}) {
          INFO("group " << group << " blocksize " << blocksize << " bits " << bits
                        << " act_order " << act_order);
          const GptqResult g = Run(w, h, Options(bits, group, blocksize, act_order));
          const QuantizedWeight r = Rtn(w, Grid(bits, group));
          CheckSameQuantizedWeight(g.weight, r);
          const double expected_loss =
              (1 + 0.01) / 2 * (w - r.Dequantize()).pow(2).sum().item<double>();
          CHECK(g.loss == Approx(expected_loss).epsilon(kIdentityLossRelTol));
        }
      }
    }
  }
}

TEST_CASE("GPTQ finds per-channel params once, on the original W including dead columns",
          "[quant]") {
  const int64_t in = 64;
  at::Tensor x = CorrelatedInputs(256, in, 18);
  x.select(1, 7).zero_();
  const at::Tensor h = HessianOf(x);
  at::Tensor w = RandomWeight(8, in, 19);
  w[0][7] = 1.0f;   // the dead column holds row 0's maximum and row 1's minimum
  w[1][7] = -1.0f;
  for (bool act_order : {false, true}) {
    INFO("act_order " << act_order);
    const QuantizedWeight g = Run(w, h, Options(3, -1, 16, act_order)).weight;
    const QuantizedWeight r = Rtn(w, Grid(3, -1));
    CHECK(at::equal(g.scales, r.scales));
    CHECK(at::equal(g.zeros, r.zeros));
    CHECK(g.Dequantize()[0][7].item<float>() == 0);
  }
}

TEST_CASE("GPTQ static groups find their params up front on W with dead columns zeroed",
          "[quant]") {
  const int64_t in = 64;
  at::Tensor x = CorrelatedInputs(256, in, 20);
  x.select(1, 40).zero_();
  const at::Tensor h = HessianOf(x);
  at::Tensor w = RandomWeight(8, in, 21);
  w[0][40] = 1.0f;  // would dominate group 1's range if it were not zeroed first
  at::Tensor w_zeroed = w.clone();
  w_zeroed.select(1, 40).zero_();
  const QuantizedWeight r = Rtn(w_zeroed, Grid(4, 32));
  for (bool act_order : {false, true}) {
    INFO("act_order " << act_order);
    const QuantizedWeight g = Run(w, h, Options(4, 32, 16, act_order, true)).weight;
    CHECK(at::equal(g.scales, r.scales));
    CHECK(at::equal(g.zeros, r.zeros));
    CHECK(at::equal(g.g_idx, r.g_idx));
  }
}

TEST_CASE("blocked GPTQ agrees with the column-by-column reference", "[quant]") {
  const int64_t out = 48, in = 256;
  at::Tensor x = CorrelatedInputs(512, in, 7);
  x.select(1, 3).zero_();  // two dead columns
  x.select(1, 100).zero_();
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(out, in, 8);
  struct Case {
    const char* name;
    GptqOptions options;
  };
  Case cases[] = {
      {"per channel, blocksize 128", Options(4, -1, 128)},
      {"per channel, blocksize 48 (ragged last block)", Options(3, -1, 48)},
      {"g32, blocksize 32", Options(4, 32, 32)},
      {"g32, blocksize 64 (groups start inside blocks)", Options(4, 32, 64)},
      {"g64, blocksize 32 (groups span blocks)", Options(3, 64, 32)},
      {"g32, act_order", Options(4, 32, 64, /*act_order=*/true)},
      {"g32, act_order, static_groups", Options(4, 32, 64, true, /*static_groups=*/true)},
      {"g32, static_groups without act_order", Options(4, 32, 64, false, true)},
      {"per channel, act_order, 2 bits", Options(2, -1, 128, true)},
      {"g64, act_order, blocksize 1", Options(3, 64, 1, true)},
      {"per channel, symmetric abs-max grid", Options(4, -1, 64)},
      {"g32, min-max grid, act_order", Options(3, 32, 64, true)},
  };
  const size_t n_cases = sizeof(cases) / sizeof(cases[0]);
  cases[n_cases - 2].options.grid.kind = GridKind::kSymAbsMax;
  cases[n_cases - 1].options.grid.kind = GridKind::kMinMax;
  for (const Case& c : cases) {
    INFO(c.name);
    const GptqResult blocked = Run(w, h, c.options);
    auto ref = GptqQuantizeRef(w, h, c.options);
    REQUIRE(ref.ok());
    const QuantizedWeight& a = blocked.weight;
    const QuantizedWeight& b = ref->weight;
    CHECK(at::equal(a.g_idx, b.g_idx));
    CHECK(a.scales.sizes() == b.scales.sizes());
    const double mismatch = a.codes.ne(b.codes).to(at::kDouble).mean().item<double>();
    CHECK(mismatch <= kRefMaxCodeMismatchFraction);
    const at::Tensor qa = a.Dequantize(), qb = b.Dequantize();
    CHECK((qa - qb).norm().item<double>() / qb.norm().item<double>() <= kRefDequantRelTol);
    CHECK(std::abs(blocked.loss - ref->loss) / ref->loss <= kRefLossRelTol);
  }
}

TEST_CASE("GPTQ with act_order and a diagonal H equals RTN in the original column order",
          "[quant]") {
  // With H diagonal, Hinv is diagonal and no error propagates, so GPTQ is RTN on the permuted
  // columns; whatever the permutation, the result must come back in the original order.
  const int64_t in = 128;
  const at::Tensor w = RandomWeight(16, in, 9);
  at::manual_seed(10);
  const at::Tensor diag = at::rand({in}) + 0.5;  // distinct, so the permutation is far from identity
  const at::Tensor h = at::diag(diag);
  const at::Tensor perm = std::get<1>(at::sort(diag, /*stable=*/true, 0, /*descending=*/true));
  REQUIRE_FALSE(at::equal(perm, at::arange(in, at::kLong)));

  SECTION("per channel") {
    CheckSameQuantizedWeight(Run(w, h, Options(4, -1, 32, true)).weight, Rtn(w, Grid(4, -1)));
  }
  SECTION("static groups keep the original groups") {
    CheckSameQuantizedWeight(Run(w, h, Options(4, 32, 32, true, true)).weight,
                             Rtn(w, Grid(4, 32)));
  }
  SECTION("groups contiguous in permuted order map back through g_idx") {
    const QuantizedWeight g = Run(w, h, Options(4, 32, 64, true)).weight;
    // RTN on the permuted weight has the same groups; undo the permutation on its codes.
    const QuantizedWeight r = Rtn(w.index_select(1, perm), Grid(4, 32));
    const at::Tensor invperm = at::argsort(perm);
    CHECK(at::equal(g.codes, r.codes.index_select(1, invperm)));
    CHECK(at::equal(g.scales, r.scales));
    CHECK(at::equal(g.zeros, r.zeros));
    CHECK(at::equal(g.g_idx, r.g_idx.index_select(0, invperm)));
    CHECK(at::equal(g.Dequantize(), r.Dequantize().index_select(1, invperm)));
  }
}

TEST_CASE("GPTQ working in the Hessian's own storage gives the same weight, loss and dead columns",
          "[quant]") {
  const int64_t in = 96;
  at::Tensor x = CorrelatedInputs(300, in, 50);
  x.select(1, 7).zero_();  // a dead column
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(24, in, 51);
  for (bool act_order : {false, true}) {
    for (bool static_groups : {false, true}) {
      INFO("act_order " << act_order << " static_groups " << static_groups);
      const GptqOptions o = Options(3, 32, 16, act_order, static_groups);
      const GptqResult want = Run(w, h, o);
      auto got = bitsweep::quant::GptqQuantizeConsuming(w, h.clone(), o);
      REQUIRE(got.ok());
      CheckSameQuantizedWeight(got->weight, want.weight);
      CHECK(got->loss == want.loss);
    }
  }
  // An h it cannot work in (not fp32) is converted, as GptqQuantize does.
  const GptqOptions o = Options(3, 32, 16, true, false);
  auto from_double = bitsweep::quant::GptqQuantizeConsuming(w, h.to(at::kDouble), o);
  REQUIRE(from_double.ok());
  CheckSameQuantizedWeight(from_double->weight, Run(w, h.to(at::kDouble), o).weight);
  // Bad inputs are refused as by GptqQuantize, naming the argument.
  auto bad = bitsweep::quant::GptqQuantizeConsuming(w, at::zeros({in + 1, in + 1}), o);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("h must be [in, in]"));
}

TEST_CASE("GPTQ zeroes dead columns (diag(H) == 0)", "[quant]") {
  const int64_t in = 96;
  at::Tensor x = CorrelatedInputs(256, in, 11);
  const int64_t dead[] = {0, 5, 31, 32, 95};
  for (int64_t c : dead) x.select(1, c).zero_();
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(20, in, 12) + 0.01;  // dead columns start non-zero
  for (const GptqOptions& o :
       {Options(4, -1, 32), Options(3, 32, 64), Options(4, 32, 32, true), Options(4, 32, 32, true, true)}) {
    INFO("group " << o.grid.group_size << " act_order " << o.act_order << " static "
                  << o.static_groups);
    const at::Tensor q = Run(w, h, o).weight.Dequantize();
    for (int64_t c : dead) CHECK(q.select(1, c).abs().max().item<float>() == 0);
    CHECK(q.select(1, 1).abs().max().item<float>() > 0);
  }
}

TEST_CASE("GPTQ beats RTN on layer-output error with correlated inputs at 2, 3 and 4 bits",
          "[quant]") {
  const int64_t in = 128;
  const at::Tensor x = CorrelatedInputs(384, in, 13);
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(64, in, 14);
  for (int bits : {2, 3, 4}) {
    for (int64_t group : {int64_t{-1}, int64_t{32}}) {
      for (bool act_order : {false, true}) {
        const double gptq =
            OutputError(w, Run(w, h, Options(bits, group, 128, act_order)).weight.Dequantize(), x);
        const double rtn = OutputError(w, Rtn(w, Grid(bits, group)).Dequantize(), x);
        INFO("bits " << bits << " group " << group << " act_order " << act_order << ": GPTQ "
                     << gptq << " vs RTN " << rtn);
        CHECK(gptq < rtn);
      }
    }
  }
}

TEST_CASE("GPTQ returns codes in the original column order with act_order", "[quant]") {
  // With a general H the dequantised weight must stay close to W column by column: a
  // column-order mix-up would pair each column with another column's codes.
  const int64_t in = 128;
  const at::Tensor x = CorrelatedInputs(256, in, 15);
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(32, in, 16);
  for (const GptqOptions& o : {Options(8, -1, 32, true), Options(8, 32, 32, true),
                               Options(8, 32, 32, true, true)}) {
    INFO("group " << o.grid.group_size << " static " << o.static_groups);
    const at::Tensor q = Run(w, h, o).weight.Dequantize();
    const at::Tensor col_err = (q - w).norm(2, {0});
    const at::Tensor col_norm = w.norm(2, {0});
    CHECK((col_err / col_norm).max().item<double>() < kEightBitColumnRelTol);
  }
}

TEST_CASE("GPTQ processes bf16 and trainable weights in fp32", "[quant]") {
  const at::Tensor x = CorrelatedInputs(128, 64, 22);
  const at::Tensor h = HessianOf(x);
  const at::Tensor w = RandomWeight(8, 64, 23).to(at::kBFloat16);
  const QuantizedWeight from_fp32 = Run(w.to(at::kFloat), h, Options(4, 32, 32, true)).weight;
  CheckSameQuantizedWeight(Run(w, h, Options(4, 32, 32, true)).weight, from_fp32);
  const at::Tensor trainable = w.to(at::kFloat).set_requires_grad(true);
  CheckSameQuantizedWeight(Run(trainable, h, Options(4, 32, 32, true)).weight, from_fp32);
  CHECK_FALSE(Run(trainable, h, Options(4, 32, 32, true)).weight.codes.requires_grad());
}

TEST_CASE("GPTQ rejects bad inputs with errors naming the parameter", "[quant]") {
  const at::Tensor w = RandomWeight(8, 64, 17);
  const at::Tensor h = at::eye(64);
  auto expect = [](const at::Tensor& w, const at::Tensor& h, const GptqOptions& o,
                   absl::StatusCode code, const std::string& name) {
    for (bool ref : {false, true}) {
      auto r = ref ? GptqQuantizeRef(w, h, o) : GptqQuantize(w, h, o);
      REQUIRE_FALSE(r.ok());
      INFO((ref ? "reference: " : "blocked: ") << r.status().ToString());
      CHECK(r.status().code() == code);
      CHECK_THAT(std::string(r.status().message()), Catch::Contains(name));
    }
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  expect(at::randn({2, 8, 64}), h, Options(4, -1), kInvalid, "w must");
  expect(at::randn({64}), h, Options(4, -1), kInvalid, "w must");
  expect(w, at::eye(32), Options(4, -1), kInvalid, "h must");
  expect(w, at::ones({64}), Options(4, -1), kInvalid, "h must");
  expect(w, h, Options(9, -1), kInvalid, "bits");
  expect(w, h, Options(0, -1), kInvalid, "bits");
  expect(w, h, Options(4, 48), kInvalid, "group_size");
  expect(w, h, Options(4, -1, 0), kInvalid, "blocksize");
  GptqOptions bad_damp = Options(4, -1);
  bad_damp.percdamp = -0.1;
  expect(w, h, bad_damp, kInvalid, "percdamp");
  at::Tensor nan_h = h.clone();
  nan_h[3][3] = std::numeric_limits<float>::quiet_NaN();
  expect(w, nan_h, Options(4, -1), kInvalid, "h contains");
  // Negative definite: damping relative to a negative mean diagonal cannot rescue it.
  expect(w, -at::eye(64), Options(4, -1), absl::StatusCode::kFailedPrecondition,
         "not positive definite");
}

TEST_CASE("GPTQ's row split across intra-op threads changes no code beyond BLAS rounding",
          "[quant]") {
  // Rows of each block run under at::parallel_for, and ctest runs tests on one thread, so this
  // pins that splitting the rows over 3 threads changes nothing. OpenBLAS's Cholesky and
  // X^T X round differently on different thread counts (measured: 2e-6 apart), so with a
  // general H a code on a rounding boundary may flip; with a diagonal H (exact in any order)
  // every code must be identical, and with a correlated H all but a few.
  const int64_t in = 128;
  const at::Tensor w = RandomWeight(96, in, 22);
  const at::Tensor x = CorrelatedInputs(256, in, 21);
  at::manual_seed(23);
  const at::Tensor diag = at::diag(at::rand({in}) + 0.5);
  const int saved = at::get_num_threads();
  for (const GptqOptions& o : {Options(3, -1, 32, true), Options(4, 32, 32, false)}) {
    for (const at::Tensor& h : {diag, HessianOf(x)}) {
      const bool exact = h.equal(diag);
      at::set_num_threads(1);
      const at::Tensor one = Run(w, h, o).weight.codes;
      at::set_num_threads(3);
      const at::Tensor three = Run(w, h, o).weight.codes;
      const double differ = one.ne(three).to(at::kDouble).mean().item<double>();
      INFO("bits " << o.grid.bits << (exact ? ", diagonal H" : ", correlated H") << ": "
                   << differ * 100 << "% of codes differ");
      CHECK(differ <= (exact ? 0.0 : 0.01));
    }
  }
  at::set_num_threads(saved);
}
