// Pins quant/billm.cc: the explicit-mask residual binarisation against upstream's NaN/nanmean
// form, the whole BillmQuantize against a python3-torch transcription of upstream bigptq.py
// (tests/reference/billm_reference.py), the exact properties of the output (values per row and
// region, dead columns, bit accounting), the per-layer entry point on tiny dense and MoE models,
// and the argument errors.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
// clang-format off
#include "quant/billm.h"
#include "quant/gptq.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "tests/testing/paths.h"
#include "tests/testing/python.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <string>
#include <vector>
// clang-format on

namespace {

using bitsweep::quant::BillmHighOrderResidual;
using bitsweep::quant::BillmOptions;
using bitsweep::quant::BillmQuantize;
using bitsweep::quant::BillmResult;

// The reference runs the same fp32 operations, but its reductions (nansum, per-column loops)
// round in a different order: outputs agree to a few fp32 ulps of the largest value.
constexpr double kRefRelTol = 1e-5;
constexpr double kLossRelTol = 1e-4;

// Runs tests/reference/billm_reference.py with `args`, its output in dir/python.log; FAILs the
// test when python3-torch is missing or the script fails.
void RunReference(const std::string& args, const std::string& dir) {
  bitsweep::testing::RunPython(
      bitsweep::testing::SourceDir() + "/tests/reference/billm_reference.py " + args,
      dir + "/python.log");
}

void WriteRaw(const at::Tensor& t, const std::string& path) {
  const at::Tensor c = t.contiguous();
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

at::Tensor ReadRaw(const std::string& path, at::IntArrayRef shape, at::ScalarType dtype) {
  at::Tensor t = at::empty(shape, dtype);
  std::ifstream f(path, std::ios::binary);
  f.read(static_cast<char*>(t.data_ptr()), t.numel() * t.element_size());
  REQUIRE(f.gcount() == static_cast<std::streamsize>(t.numel() * t.element_size()));
  return t;
}

double MaxRelDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(b.abs().max().item<double>(), 1e-30);
}

// H = (2/N) X^T X from correlated inputs (a random mixing of i.i.d. columns), column `dead`
// never excited when >= 0.
at::Tensor RandomHessian(int64_t in, int64_t tokens, int64_t dead, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor x = at::randn({tokens, in}).matmul(at::eye(in) + 0.3 * at::randn({in, in}) / 8);
  if (dead >= 0) x.select(1, dead).zero_();
  bitsweep::quant::HessianAccumulator acc(in);
  acc.Add(x, 1);
  return acc.H();
}

// Squared error of row r of approx over the entries of mask.
double RowError(const at::Tensor& x, const at::Tensor& approx, const at::Tensor& mask, int64_t r) {
  return ((x[r] - approx[r]) * mask[r].to(at::kFloat)).pow(2).sum().item<double>();
}

BillmResult QuantizeOrDie(const at::Tensor& w, const at::Tensor& h, const BillmOptions& o) {
  auto r = BillmQuantize(w, h, o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

}  // namespace

TEST_CASE("BiLLM order-2 residual binarisation is never worse than order 1, row by row",
          "[quant][billm]") {
  at::manual_seed(1);
  const at::Tensor x = at::randn({24, 40});
  at::Tensor mask = at::rand({24, 40}).lt(0.6);
  mask[3].fill_(false);  // an empty row
  mask[5].fill_(false);  // a row with one entry
  mask[5][7] = true;
  const at::Tensor r1 = BillmHighOrderResidual(x, mask, 1).value();
  const at::Tensor r2 = BillmHighOrderResidual(x, mask, 2).value();
  CHECK(r1.masked_select(mask.logical_not()).abs().max().item<float>() == 0);
  CHECK(r2.masked_select(mask.logical_not()).abs().max().item<float>() == 0);
  for (int64_t r = 0; r < x.size(0); ++r) {
    const double e1 = RowError(x, r1, mask, r);
    const double e2 = RowError(x, r2, mask, r);
    INFO("row " << r << ": order-1 error " << e1 << ", order-2 error " << e2);
    CHECK(e2 <= e1 * (1 + 1e-6) + 1e-12);
    if (r != 3 && r != 5) CHECK(e2 < e1);  // the second order always removes some error
  }
  // One entry: mu is the entry itself, so both orders reproduce it exactly.
  CHECK(RowError(x, r1, mask, 5) == 0);
  CHECK(RowError(x, r2, mask, 5) == 0);
  CHECK(r1[5][7].item<float>() == x[5][7].item<float>());
}

TEST_CASE("BiLLM explicit-mask residual binarisation equals upstream's NaN/nanmean form",
          "[quant][billm][python]") {
  const std::string dir = bitsweep::testing::ScratchDir("billm_hor");
  at::manual_seed(2);
  const at::Tensor x = at::randn({32, 96}) * 0.05;
  at::Tensor mask = at::rand({32, 96}).lt(0.3);
  mask[0].fill_(false);
  mask[17].fill_(false);
  mask[9].fill_(true);
  WriteRaw(x, dir + "/x.bin");
  WriteRaw(mask.to(at::kByte), dir + "/m.bin");
  RunReference("hor " + dir + "/x.bin " + dir + "/m.bin 32 96 3 " + dir + "/out", dir);
  for (int order : {1, 2, 3}) {
    const at::Tensor ref = ReadRaw(dir + "/out." + std::to_string(order), {32, 96}, at::kFloat);
    const at::Tensor got = BillmHighOrderResidual(x, mask, order).value();
    INFO("order " << order << ": max |got - ref| / max |ref| = " << MaxRelDiff(got, ref));
    CHECK(MaxRelDiff(got, ref) <= kRefRelTol);
    CHECK(got[0].abs().max().item<float>() == 0);
    CHECK(got[17].abs().max().item<float>() == 0);
  }
}

TEST_CASE("BillmQuantize equals the python transcription of upstream fasterquant",
          "[quant][billm][python]") {
  const std::string dir = bitsweep::testing::ScratchDir("billm_ref");
  const int64_t rows = 16, cols = 256;  // two blocks
  at::manual_seed(3);
  const at::Tensor w = at::randn({rows, cols}) * 0.02;
  const at::Tensor h = RandomHessian(cols, 96, /*dead=*/70, 4);
  WriteRaw(w, dir + "/w.bin");
  WriteRaw(h, dir + "/h.bin");
  RunReference("quant " + dir + "/w.bin " + dir + "/h.bin 16 256 128 50 hessian,magnitude " +
                   "0.01 " + dir + "/ref",
               dir);
  for (auto metric : {BillmOptions::Saliency::kHessian, BillmOptions::Saliency::kMagnitude}) {
    const std::string name = metric == BillmOptions::Saliency::kHessian ? "hessian" : "magnitude";
    {
      INFO("saliency metric " << name);
      BillmOptions o;
      o.saliency = metric;
      const BillmResult got = QuantizeOrDie(w, h, o);
      const at::Tensor ref_w = ReadRaw(dir + "/ref." + name + ".weight", {rows, cols}, at::kFloat);
      const at::Tensor ref_region =
          ReadRaw(dir + "/ref." + name + ".region", {rows, cols}, at::kChar);
      const nlohmann::json meta =
          nlohmann::json::parse(std::ifstream(dir + "/ref." + name + ".json"));
      // Same masks: same salient columns, same break point.
      CHECK(got.region.equal(ref_region));
      const std::vector<int64_t> ks = meta["salient"];
      REQUIRE(ks.size() == 2);
      CHECK(got.salient_fraction == Approx((ks[0] + ks[1]) / 256.0));
      CHECK(got.salient_fraction_last_block == Approx(ks[1] / 128.0));
      INFO("max |W - W_ref| / max |W_ref| = " << MaxRelDiff(got.weight, ref_w));
      CHECK(MaxRelDiff(got.weight, ref_w) <= kRefRelTol);
      const double ref_loss = meta["loss"];
      CHECK(std::abs(got.loss - ref_loss) <= kLossRelTol * ref_loss);
    }
  }
}

TEST_CASE(
    "BiLLM weights take at most 2 values per row, block and order-1 region, 4 in the "
    "salient region",
    "[quant][billm]") {
  const int64_t rows = 12, cols = 384;
  at::manual_seed(5);
  const at::Tensor w = at::randn({rows, cols}) * 0.02;
  const at::Tensor h = RandomHessian(cols, 128, -1, 6);
  for (auto metric : {BillmOptions::Saliency::kHessian, BillmOptions::Saliency::kMagnitude}) {
    BillmOptions o;
    o.saliency = metric;
    const BillmResult res = QuantizeOrDie(w, h, o);
    REQUIRE(res.region.sizes() == w.sizes());
    const float* q = res.weight.contiguous().data_ptr<float>();
    const int8_t* reg = res.region.contiguous().data_ptr<int8_t>();
    std::vector<int64_t> region_sizes(3, 0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < cols; b += 128) {
        std::vector<std::set<float>> values(3);
        for (int64_t c = b; c < b + 128; ++c) {
          values[reg[r * cols + c]].insert(q[r * cols + c]);
          ++region_sizes[reg[r * cols + c]];
        }
        INFO("row " << r << ", block " << b / 128);
        CHECK(values[0].size() <= 2);
        CHECK(values[1].size() <= 2);
        CHECK(values[2].size() <= 4);
      }
    }
    // Every region is used and salient columns are whole columns of a block.
    CHECK(region_sizes[0] > 0);
    CHECK(region_sizes[1] > 0);
    CHECK(region_sizes[2] > 0);
    const at::Tensor salient = res.region.eq(2);
    CHECK(salient.all(0).equal(salient.any(0)));
  }
}

TEST_CASE("BiLLM bit accounting: salient fractions, study bits and the full storage cost",
          "[quant][billm]") {
  const int64_t rows = 10, cols = 320;  // blocks of 128, 128 and 64 columns
  at::manual_seed(7);
  const at::Tensor w = at::randn({rows, cols}) * 0.02;
  const at::Tensor h = RandomHessian(cols, 128, -1, 8);
  BillmOptions o;
  const BillmResult res = QuantizeOrDie(w, h, o);
  // Salient columns per block, counted on the region map.
  const at::Tensor salient_cols = res.region.eq(2).all(0);
  std::vector<int64_t> k;
  double storage = 0;
  for (int64_t st = 0; st < cols; st += 128) {
    const int64_t n = std::min<int64_t>(128, cols - st);
    k.push_back(salient_cols.slice(0, st, st + n).sum().item<int64_t>());
    const double kb = static_cast<double>(k.back());
    // signs + 2nd-order signs + column bitmap + split flags + 4 fp16 (alpha, mu) pairs per row.
    storage += rows * n + rows * kb + n + rows * (n - kb) + rows * 4 * 32;
  }
  const double total_k = k[0] + k[1] + k[2];
  CHECK(res.salient_fraction == Approx(total_k / cols));
  CHECK(res.salient_fraction_last_block == Approx(k[2] / 64.0));
  CHECK(res.storage_bits == Approx(storage / (rows * cols)));
  CHECK(res.salient_fraction >= 0);
  CHECK(res.salient_fraction <= static_cast<double>(o.up_lim) / o.blocksize);
  for (int64_t kb : k) CHECK(kb >= 1);  // the search always keeps 1..up_lim-1 columns
  CHECK(res.storage_bits > 1);
  const double study_bits = 1 + res.salient_fraction_last_block;
  CHECK(study_bits >= 1);
  CHECK(study_bits <= 2);
  CHECK(res.loss > 0);
}

// Upstream zeroes a dead column's weights before binarising, then binarises those zeros like any
// other weight (its row-region's mu +- alpha), so the output column is not zero; what must hold
// is that the original weights of a dead column never matter.
TEST_CASE("BiLLM zeroes dead columns (diag(H) == 0) before binarising", "[quant][billm]") {
  at::manual_seed(9);
  const at::Tensor w = at::randn({8, 256}) * 0.02 + 0.01;
  const at::Tensor h = RandomHessian(256, 96, /*dead=*/200, 10);
  at::Tensor w_zero = w.clone();
  w_zero.select(1, 200).zero_();
  at::Tensor w_big = w.clone();
  w_big.select(1, 200).fill_(3.0);
  const BillmResult a = QuantizeOrDie(w_zero, h, BillmOptions{});
  const BillmResult b = QuantizeOrDie(w_big, h, BillmOptions{});
  CHECK(a.weight.equal(b.weight));
  CHECK(a.region.equal(b.region));
  CHECK(a.loss == b.loss);
  // A live column's weights do matter.
  at::Tensor w_live = w_zero.clone();
  w_live.select(1, 199).fill_(3.0);
  CHECK_FALSE(QuantizeOrDie(w_live, h, BillmOptions{}).weight.equal(a.weight));
}

TEST_CASE("BiLLM rejects bad inputs with errors naming the parameter", "[quant][billm]") {
  const at::Tensor w = at::randn({4, 128});
  const at::Tensor h = at::eye(128);
  auto expect = [](const bitsweep::StatusOr<BillmResult>& r, const std::string& what) {
    INFO(r.status().ToString());
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(r.status().message()).find(what) != std::string::npos);
  };
  BillmOptions o;
  o.blocksize = 0;
  expect(BillmQuantize(w, h, o), "blocksize");
  o = BillmOptions{};
  o.percdamp = -0.1;
  expect(BillmQuantize(w, h, o), "percdamp");
  o = BillmOptions{};
  o.up_lim = 1;
  expect(BillmQuantize(w, h, o), "up_lim");
  expect(BillmQuantize(at::randn({4, 128, 1}), h, BillmOptions{}), "w must be a 2-D");
  expect(BillmQuantize(w, at::eye(64), BillmOptions{}), "h must be [in, in]");
  at::Tensor bad_h = at::eye(128);
  bad_h[3][3] = std::numeric_limits<float>::quiet_NaN();
  expect(BillmQuantize(w, bad_h, BillmOptions{}), "h contains non-finite");
  auto hor = BillmHighOrderResidual(w, at::ones({4, 64}, at::kBool), 1);
  CHECK(hor.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(hor.status().message()).find("mask") != std::string::npos);
}

namespace {

struct TinyLayerRun {
  std::unique_ptr<bitsweep::model::Qwen3Model> model;
  bitsweep::quant::QuantizeResult out;
  std::vector<at::Tensor> xs_before, xs_after;
};

// Embeds `samples` random sequences and runs BillmQuantizeLayer over every layer.
TinyLayerRun RunTiny(const bitsweep::model::TinyModelOptions& opts, int64_t samples, int64_t len,
                     int64_t min_expert_tokens) {
  TinyLayerRun run;
  const auto config = bitsweep::model::TinyConfig(opts, 256);
  auto m = bitsweep::model::Qwen3Model::FromTensors(
      config, bitsweep::model::RandomQwen3Weights(config, opts.seed));
  REQUIRE(m.ok());
  run.model = std::move(m).value();
  c10::InferenceMode guard;
  at::manual_seed(11);
  std::vector<at::Tensor> xs;
  for (int64_t s = 0; s < samples; ++s) {
    xs.push_back(run.model->Embed(at::randint(0, 256, {1, len}, at::kLong)));
  }
  const auto rope = run.model->MakeRope(len);
  for (int64_t i = 0; i < run.model->num_layers(); ++i) {
    bitsweep::quant::LayerJob job;
    job.model = run.model.get();
    job.index = i;
    job.prefix = "model.layers." + std::to_string(i) + ".";
    job.xs = &xs;
    job.rope = &rope;
    job.min_expert_tokens = min_expert_tokens;
    if (i == 0) run.xs_before = xs;
    const bitsweep::Status s = bitsweep::quant::BillmQuantizeLayer(job, BillmOptions{}, &run.out);
    INFO(s.ToString());
    REQUIRE(s.ok());
    if (i == 0) run.xs_after = xs;
  }
  return run;
}

}  // namespace

TEST_CASE("BillmQuantizeLayer binarises every linear of a dense layer from one forward",
          "[quant][billm]") {
  bitsweep::model::TinyModelOptions opts;
  opts.hidden_size = 128;
  opts.intermediate_size = 256;
  opts.head_dim = 32;
  TinyLayerRun run = RunTiny(opts, 4, 32, 16);
  const int64_t per_layer = 7;
  REQUIRE(run.out.linears.size() == static_cast<size_t>(per_layer * run.model->num_layers()));
  double params = 0, study = 0, storage = 0;
  for (const auto& r : run.out.linears) {
    INFO(r.name);
    CHECK(r.note.empty());
    CHECK(r.calib_tokens == 4 * 32);
    CHECK(r.loss > 0);
    const double p = r.stats.at("params");
    params += p;
    study += p * r.stats.at("salient_fraction_last_block");
    storage += p * r.stats.at("storage_bits");
    CHECK(r.stats.at("salient_fraction") > 0);
    CHECK(r.stats.at("storage_bits") > 2);
    // The model now holds the binarised weight: at most 2 + 2 + 4 values per row and block.
    const at::Tensor w = run.model->FindLinear(r.name)->weight();
    for (int64_t b = 0; b < w.size(1); b += 128) {
      const at::Tensor blk = w.slice(1, b, b + 128);
      CHECK(std::get<0>(at::_unique2(blk[0])).numel() <= 8);
    }
  }
  CHECK(run.out.summary.at("billm_params") == Approx(params));
  CHECK(run.out.summary.at("billm_effective_bits_study") == Approx(1 + study / params));
  CHECK(run.out.summary.at("billm_storage_bits") == Approx(storage / params));
  CHECK(run.out.summary.at("billm_effective_bits_study") > 1);
  CHECK(run.out.summary.at("billm_effective_bits_study") < 2);
  // The next inputs are the binarised layer's outputs, not the FP ones.
  REQUIRE(run.xs_after.size() == 4);
  CHECK_FALSE(run.xs_after[0].equal(run.xs_before[0]));
}

TEST_CASE("BillmQuantizeLayer binarises rarely routed experts with H = I and says so",
          "[quant][billm]") {
  bitsweep::model::TinyModelOptions opts;
  opts.moe = true;
  opts.num_layers = 1;
  opts.hidden_size = 128;
  opts.head_dim = 32;
  opts.moe_intermediate_size = 128;
  // 2 x 16 tokens, 2 of 8 experts each: about 8 tokens per expert, below the threshold.
  TinyLayerRun run = RunTiny(opts, 2, 16, 1000);
  int64_t fallbacks = 0;
  for (const auto& r : run.out.linears) {
    const bool expert = r.name.find("experts.") != std::string::npos;
    if (expert) {
      CHECK(r.note.find("H = I") != std::string::npos);
      ++fallbacks;
    } else {
      CHECK(r.note.empty());
    }
    // Even an expert that saw no token is binarised from its weight (no dead columns).
    const at::Tensor w = run.model->FindLinear(r.name)->weight();
    CHECK(w.abs().sum().item<double>() > 0);
  }
  CHECK(fallbacks == 8 * 3);
}

TEST_CASE("BiLLM's row split across intra-op threads changes no weight beyond BLAS rounding",
          "[quant][billm]") {
  // The row loop runs under at::parallel_for and ctest runs tests on one thread, so this pins
  // that splitting rows over 3 threads changes nothing: with a diagonal Hessian (whose Cholesky
  // is exact in any order) every weight is identical; with a general one OpenBLAS rounds
  // differently per thread count, so a few binarisation choices may flip.
  const int64_t rows = 40, cols = 256;
  at::manual_seed(8);
  const at::Tensor w = at::randn({rows, cols}) * 0.02;
  const at::Tensor diag = at::diag(at::rand({cols}) + 0.5);
  const int saved = at::get_num_threads();
  for (const at::Tensor& h : {diag, RandomHessian(cols, 96, -1, 9)}) {
    const bool exact = h.equal(diag);
    at::set_num_threads(1);
    const BillmResult one = QuantizeOrDie(w, h, BillmOptions{});
    at::set_num_threads(3);
    const BillmResult three = QuantizeOrDie(w, h, BillmOptions{});
    // A flipped choice moves a weight by about its row's scale; rounding by far less.
    const at::Tensor moved = (one.weight - three.weight).abs() > 1e-3 * w.abs().max();
    const double differ = moved.to(at::kDouble).mean().item<double>();
    INFO((exact ? "diagonal H: " : "general H: ")
         << differ * 100 << "% of weights moved, largest move "
         << (one.weight - three.weight).abs().max().item<double>());
    CHECK(differ <= (exact ? 0.0 : 0.02));
    if (exact) CHECK(one.region.equal(three.region));
  }
  at::set_num_threads(saved);
}
