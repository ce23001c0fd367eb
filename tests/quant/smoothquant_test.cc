// Pins quant/smoothquant.cc (docs/methods.md#smoothquant, #released-code): the smoothing scales on
// a hand-computed example, function preservation of the smoothing (dense and MoE, router
// included), the act-max calibration and FP propagation of SmoothQuantLayer, the per-channel
// abs-max weights (codes, dequantisation, the released code's no-smoothing path = plain RTN),
// the activation hooks (W8A8Linear.forward); the agreement with an independent python3-torch
// re-implementation of upstream smoothquant is smoothquant_python_test.cc.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/smoothquant.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/calibration_data.h"
#include "quant/method.h"
#include "quant/quantize_model.h"
#include "quant/rtn.h"
#include "tests/quant/smoothquant_testing.h"
#include "tests/testing/paths.h"
#include "tests/testing/python.h"

namespace {

using bitsweep::model::DecoderLayer;
using bitsweep::model::Qwen3Config;
using bitsweep::model::Qwen3Model;
using bitsweep::model::TinyModelOptions;
using bitsweep::quant::FakeQuantizePerToken;
using bitsweep::quant::FindLinearIn;
using bitsweep::quant::InstallActivationQuantization;
using bitsweep::quant::LayerJob;
using bitsweep::quant::QuantizeResult;
using bitsweep::quant::SmoothingScales;
using bitsweep::quant::SmoothLayer;
using bitsweep::quant::SmoothQuantLayer;
using bitsweep::quant::SmoothQuantOptions;
using bitsweep::Status;
using bitsweep::quant::smoothquant_test::Config;
using bitsweep::quant::smoothquant_test::Ids;
using bitsweep::quant::smoothquant_test::kVocab;
using bitsweep::quant::smoothquant_test::RelDiff;
using bitsweep::quant::smoothquant_test::Tensors;
using bitsweep::quant::smoothquant_test::Weights;

// Rescaling norm weights and weight columns by s and 1/s in fp32 moves a layer's output by a
// few roundings: relative to its largest entry.
constexpr double kSmoothPreserveRelTol = 1e-5;
// Same ops in the same order on the same values: fp32 results agree to rounding.
constexpr double kFloatRelTol = 1e-6;

std::unique_ptr<Qwen3Model> Build(const Qwen3Config& c, const Tensors& w) {
  Tensors copy;
  for (const auto& [k, v] : w) copy[k] = v.clone();
  auto m = Qwen3Model::FromTensors(c, copy);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return std::move(m).value();
}

std::vector<at::Tensor> Embed(const Qwen3Model& m, const std::vector<at::Tensor>& ids) {
  std::vector<at::Tensor> xs;
  for (const auto& i : ids) xs.push_back(m.Embed(i));
  return xs;
}

// Column-wise max |W| over the named linears of layer: [in] fp32.
at::Tensor ColumnAbsMax(DecoderLayer& layer, const std::vector<std::string>& names) {
  at::Tensor m;
  for (const auto& n : names) {
    at::Tensor c = FindLinearIn(layer, n)->weight().abs().amax(0);
    m = m.defined() ? at::maximum(m, c) : c;
  }
  return m;
}

std::vector<bitsweep::model::ScalingGroup> Groups(Qwen3Model& m, int64_t i) {
  const auto& c = m.config();
  return bitsweep::model::ScalingGroups(m.layer(i), c.num_attention_heads, c.num_key_value_heads,
                                        c.head_dim);
}

// Random positive activation maxima with a wide spread, by group input.
Tensors RandomActMax(Qwen3Model& m, int64_t i, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  Tensors a;
  for (const auto& g : Groups(m, i)) {
    a[g.input_of] = at::exp(at::normal(0.0, 1.5, {m.config().hidden_size}, gen));
  }
  return a;
}

// Per-channel max over tokens of |input| of `linear` in layer i during a forward of xs, by a
// hook written here (independent of smoothquant.cc's calibration).
at::Tensor ObservedActMax(Qwen3Model& m, int64_t i, const std::string& linear,
                          const std::vector<at::Tensor>& xs,
                          const bitsweep::model::RopeTables& rope) {
  at::Tensor acc;
  auto* lin = FindLinearIn(m.layer(i), linear);
  lin->SetInputHook([&acc](const at::Tensor& x) {
    at::Tensor a = x.abs().reshape({-1, x.size(-1)}).amax(0);
    acc = acc.defined() ? at::maximum(acc, a) : a;
    return x;
  });
  for (const auto& x : xs) (void)m.RunLayer(i, x, rope);
  lin->SetInputHook(nullptr);
  return acc;
}

LayerJob Job(Qwen3Model& m, int64_t i, std::vector<at::Tensor>* xs,
             const bitsweep::model::RopeTables* rope) {
  LayerJob job;
  job.model = &m;
  job.index = i;
  job.prefix = "model.layers." + std::to_string(i) + ".";
  job.xs = xs;
  job.rope = rope;
  return job;
}

}  // namespace

TEST_CASE("SmoothingScales is smooth.py's clamp(a^alpha / clamp(w,1e-5)^(1-alpha), 1e-5)",
          "[quant][smoothquant]") {
  const at::Tensor a = at::tensor({4.0, 9.0, 0.0, 1e-12, 2.0}, at::kFloat);
  const at::Tensor w = at::tensor({2.0, 0.5, 3.0, 0.0, 1e-7}, at::kFloat);
  // alpha = 0: s = 1 / clamp(w, 1e-5), all weight difficulty moved to the activations.
  const std::vector<double> s0 = {0.5, 2.0, 1.0 / 3.0, 1e5, 1e5};
  // alpha = 1: s = clamp(a, 1e-5).
  const std::vector<double> s1 = {4.0, 9.0, 1e-5, 1e-5, 2.0};
  // alpha = 0.5: sqrt(a / clamp(w)), the last two with the 1e-5 floors.
  const std::vector<double> s5 = {std::sqrt(2.0), std::sqrt(18.0), 1e-5, std::sqrt(1e-12 / 1e-5),
                                  std::sqrt(2.0 / 1e-5)};
  for (const auto& [alpha, want] :
       std::vector<std::pair<double, std::vector<double>>>{{0.0, s0}, {1.0, s1}, {0.5, s5}}) {
    const at::Tensor s = SmoothingScales(a, w, alpha);
    REQUIRE(s.scalar_type() == at::kFloat);
    for (size_t j = 0; j < want.size(); ++j) {
      INFO("alpha " << alpha << " channel " << j);
      CHECK(s[j].item<double>() == Approx(want[j]).epsilon(1e-6));
    }
  }
}

TEST_CASE("FakeQuantizePerToken is smoothquant's per-token abs-max quantiser",
          "[quant][smoothquant]") {
  // Rows: a hand example, an all-zero token (scale clamped to 1e-5/qmax: stays zero).
  const at::Tensor x =
      at::tensor({1.0, -2.0, 0.5, 3.0, 0.0, 0.0, 0.0, 0.0}, at::kFloat).view({2, 4});
  // 2 bits: qmax 1, scale 3: round(x/3) = 0,-1,0,1.
  const at::Tensor q2 = FakeQuantizePerToken(x, 2);
  CHECK(at::equal(q2,
                  at::tensor({0.0, -3.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0}, at::kFloat).view({2, 4})));
  // 3 bits: qmax 3, scale 1: round half to even sends 0.5 to 0.
  const at::Tensor q3 = FakeQuantizePerToken(x, 3);
  CHECK(at::equal(q3,
                  at::tensor({1.0, -2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0}, at::kFloat).view({2, 4})));
  // The upstream expression on a random [2, 5, 16] tensor, per token over the last dimension.
  at::manual_seed(3);
  const at::Tensor r = at::randn({2, 5, 16});
  const at::Tensor scale = r.abs().amax(-1, true).clamp_min(1e-5) / 127;
  CHECK(at::equal(FakeQuantizePerToken(r, 8), at::round(r / scale) * scale));
}

TEST_CASE("Smoothing alone leaves the FP layer function unchanged, dense and MoE",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Qwen3Config c = Config(moe);
    auto m = Build(c, Weights(c, 11, /*outliers=*/true));
    const auto rope = m->MakeRope(24);
    const std::vector<at::Tensor> xs = Embed(*m, Ids(2, 24, 5));
    const at::Tensor before = at::cat({m->RunLayer(0, xs[0], rope), m->RunLayer(0, xs[1], rope)});
    const at::Tensor router_before = moe ? m->layer(0).moe->gate.weight().clone() : at::Tensor();
    const at::Tensor q_before = m->layer(0).q_proj.weight().clone();

    Tensors applied;
    REQUIRE(SmoothLayer(m->layer(0), Groups(*m, 0), RandomActMax(*m, 0, 9), 0.5, &applied).ok());
    // Only the two norm groups are smoothed (upstream leaves o_proj and down_proj alone).
    CHECK(applied.size() == 2);
    CHECK(applied.count("input_layernorm") == 1);
    CHECK(applied.count("post_attention_layernorm") == 1);
    // The weights really moved (the property below is not vacuous), the router included.
    CHECK(RelDiff(m->layer(0).q_proj.weight(), q_before) > 0.5);
    if (moe) CHECK(RelDiff(m->layer(0).moe->gate.weight(), router_before) > 0.5);

    const at::Tensor after = at::cat({m->RunLayer(0, xs[0], rope), m->RunLayer(0, xs[1], rope)});
    CHECK(RelDiff(after, before) < kSmoothPreserveRelTol);
  }
}

TEST_CASE("Smoothing divides the norm by s and scales columns, w_max spans the router",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  const Qwen3Config c = Config(/*moe=*/true);
  const Tensors w = Weights(c, 12, false);
  auto m = Build(c, w);
  DecoderLayer& layer = m->layer(0);
  // Make the router dominate input column 5, so that leaving it out of w_max would show.
  layer.moe->gate.SetWeight(layer.moe->gate.weight().index_fill(1, at::tensor({5L}), 3.0));
  const auto groups = Groups(*m, 0);
  const auto& qkv = groups[0];
  const auto& mlp = groups[2];
  REQUIRE(mlp.also_scaled == std::vector<std::string>{"mlp.gate"});
  std::vector<std::string> mlp_all = mlp.linears;
  mlp_all.push_back("mlp.gate");
  const at::Tensor norm_in = layer.input_layernorm.clone();
  const at::Tensor norm_post = layer.post_attention_layernorm.clone();

  SECTION("alpha 0: s = 1 / w_max, so every column's max |W| over the group becomes 1") {
    const at::Tensor wmax_qkv = ColumnAbsMax(layer, qkv.linears);
    const at::Tensor wmax_mlp = ColumnAbsMax(layer, mlp_all);
    REQUIRE(SmoothLayer(layer, groups, RandomActMax(*m, 0, 4), 0.0).ok());
    const at::Tensor ones = at::ones({c.hidden_size});
    CHECK(RelDiff(ColumnAbsMax(layer, qkv.linears), ones) < kFloatRelTol);
    CHECK(RelDiff(ColumnAbsMax(layer, mlp_all), ones) < kFloatRelTol);
    // The router sets column 5: the experts' columns stay well below 1 there.
    CHECK(ColumnAbsMax(layer, mlp.linears)[5].item<double>() < 0.5);
    CHECK(RelDiff(layer.input_layernorm, norm_in * wmax_qkv) < kFloatRelTol);
    CHECK(RelDiff(layer.post_attention_layernorm, norm_post * wmax_mlp) < kFloatRelTol);
  }
  SECTION("alpha 1: s = act_max, the norm is divided by it and the columns multiplied") {
    const Tensors act = RandomActMax(*m, 0, 4);
    const at::Tensor q0 = layer.q_proj.weight().clone();
    const at::Tensor r0 = layer.moe->gate.weight().clone();
    const at::Tensor e0 = FindLinearIn(layer, "mlp.experts.3.up_proj")->weight().clone();
    const at::Tensor o0 = layer.o_proj.weight().clone();
    const at::Tensor d0 = FindLinearIn(layer, "mlp.experts.3.down_proj")->weight().clone();
    REQUIRE(SmoothLayer(layer, groups, act, 1.0).ok());
    const at::Tensor a_qkv = act.at("self_attn.q_proj");
    const at::Tensor a_mlp = act.at("mlp.gate");
    CHECK(RelDiff(layer.input_layernorm, norm_in / a_qkv) < kFloatRelTol);
    CHECK(RelDiff(layer.post_attention_layernorm, norm_post / a_mlp) < kFloatRelTol);
    CHECK(RelDiff(layer.q_proj.weight(), q0 * a_qkv.view({1, -1})) < kFloatRelTol);
    CHECK(RelDiff(layer.moe->gate.weight(), r0 * a_mlp.view({1, -1})) < kFloatRelTol);
    CHECK(RelDiff(FindLinearIn(layer, "mlp.experts.3.up_proj")->weight(),
                  e0 * a_mlp.view({1, -1})) < kFloatRelTol);
    CHECK(at::equal(layer.o_proj.weight(), o0));
    CHECK(at::equal(FindLinearIn(layer, "mlp.experts.3.down_proj")->weight(), d0));
  }
  SECTION("bad arguments are rejected before anything changes") {
    Tensors act = RandomActMax(*m, 0, 4);
    Status s = SmoothLayer(layer, groups, act, 1.5);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find("alpha") != std::string::npos);
    act.erase("mlp.gate");
    s = SmoothLayer(layer, groups, act, 0.5);
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find("act_max") != std::string::npos);
    act = RandomActMax(*m, 0, 4);
    act["mlp.gate"] = -act["mlp.gate"];
    CHECK(SmoothLayer(layer, groups, act, 0.5).code() == absl::StatusCode::kInvalidArgument);
    CHECK(at::equal(layer.input_layernorm, norm_in));
    CHECK(at::equal(layer.post_attention_layernorm, norm_post));
  }
}

TEST_CASE("SmoothQuantLayer calibrates on the norm outputs, smooths, quantizes, propagates FP",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Qwen3Config c = Config(moe);
    const Tensors w = Weights(c, 21, /*outliers=*/true);
    auto m = Build(c, w);
    auto fp = Build(c, w);  // untouched FP twin
    const auto rope = m->MakeRope(16);
    std::vector<at::Tensor> xs = Embed(*m, Ids(3, 16, 8));
    const std::vector<at::Tensor> xs0 = xs;
    const std::string mlp_in = moe ? "mlp.gate" : "mlp.gate_proj";
    const at::Tensor act_qkv = ObservedActMax(*fp, 0, "self_attn.q_proj", xs0, rope);
    const at::Tensor act_mlp = ObservedActMax(*fp, 0, mlp_in, xs0, rope);

    SmoothQuantOptions o;
    o.alpha = 0.7;
    QuantizeResult out;
    LayerJob job = Job(*m, 0, &xs, &rope);
    Status st = SmoothQuantLayer(job, 4, o, &out);
    INFO(st.ToString());
    REQUIRE(st.ok());

    // Next-layer inputs: the FP layer's outputs, bit for bit (the hooks observe, never alter).
    REQUIRE(xs.size() == xs0.size());
    for (size_t k = 0; k < xs.size(); ++k) CHECK(at::equal(xs[k], fp->RunLayer(0, xs0[k], rope)));

    // The norms absorbed 1/s with s from the observed maxima and the FP weights' w_max.
    const auto groups = Groups(*fp, 0);
    std::vector<std::string> mlp_fcs = groups[2].linears;
    for (const auto& n : groups[2].also_scaled) mlp_fcs.push_back(n);
    const at::Tensor s_qkv =
        SmoothingScales(act_qkv, ColumnAbsMax(fp->layer(0), groups[0].linears), o.alpha);
    const at::Tensor s_mlp = SmoothingScales(act_mlp, ColumnAbsMax(fp->layer(0), mlp_fcs), o.alpha);
    CHECK(RelDiff(m->layer(0).input_layernorm, fp->layer(0).input_layernorm / s_qkv) <
          kFloatRelTol);
    CHECK(RelDiff(m->layer(0).post_attention_layernorm,
                  fp->layer(0).post_attention_layernorm / s_mlp) < kFloatRelTol);
    if (moe) {
      // The router is rescaled, not quantized.
      CHECK(RelDiff(m->layer(0).moe->gate.weight(),
                    fp->layer(0).moe->gate.weight() * s_mlp.view({1, -1})) < kFloatRelTol);
      CHECK(out.weights.count("model.layers.0.mlp.gate") == 0);
    }

    // Every quantized linear: one report, codes in -7..7, dequantising to the model's weight,
    // within half a step of the smoothed FP weight, the step being max|row| / 7.
    const auto names = bitsweep::model::QuantizedLinears(m->layer(0));
    REQUIRE(out.linears.size() == names.size());
    REQUIRE(out.weights.size() == names.size());
    int64_t smoothed_count = 0;
    for (size_t k = 0; k < names.size(); ++k) {
      const std::string& n = names[k];
      INFO(n);
      const auto& r = out.linears[k];
      CHECK(r.name == "model.layers.0." + n);
      const auto& q = out.weights.at(r.name);
      CHECK(q.codes.min().item<int>() >= -7);
      CHECK(q.codes.max().item<int>() <= 7);
      CHECK(q.zeros.eq(0).all().item<bool>());
      const at::Tensor deq = q.Dequantize();
      CHECK(at::equal(deq, FindLinearIn(m->layer(0), n)->weight()));
      const bool in_qkv = n.rfind("self_attn.", 0) == 0 && n != "self_attn.o_proj";
      const bool in_mlp =
          n.find("gate_proj") != std::string::npos || n.find("up_proj") != std::string::npos;
      at::Tensor ws = FindLinearIn(fp->layer(0), n)->weight();
      if (in_qkv) ws = ws * s_qkv.view({1, -1});
      if (in_mlp) ws = ws * s_mlp.view({1, -1});
      const at::Tensor step = ws.abs().amax(1, true) / 7;
      CHECK(((deq - ws).abs() <= step * (0.5 + 1e-5)).all().item<bool>());
      CHECK(r.loss == Approx((deq - ws).pow(2).sum().item<double>()).epsilon(1e-4));
      const bool smoothed = in_qkv || in_mlp;
      smoothed_count += smoothed;
      CHECK(r.stats.at("smoothed") == (smoothed ? 1.0 : 0.0));
      CHECK(r.stats.at("alpha") == o.alpha);
      CHECK(r.calib_tokens == (smoothed ? 3 * 16 : -1));
    }
    CHECK(smoothed_count == (moe ? 3 + 2 * c.num_experts : 5));
  }
}

TEST_CASE("SmoothQuantLayer runs in bf16: smoothing in fp32, rounded back once",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Qwen3Config c = Config(moe);
    const Tensors w = Weights(c, 22, /*outliers=*/true);
    bitsweep::model::LoadOptions lo;
    lo.dtype = bitsweep::model::ComputeDType::kBFloat16;
    auto m = std::move(Qwen3Model::FromTensors(c, w, lo)).value();
    auto fp = std::move(Qwen3Model::FromTensors(c, w, lo)).value();
    const auto rope = m->MakeRope(16);
    std::vector<at::Tensor> xs = Embed(*m, Ids(2, 16, 9));
    const std::vector<at::Tensor> xs0 = xs;
    SmoothQuantOptions o;
    QuantizeResult out;
    LayerJob job = Job(*m, 0, &xs, &rope);
    Status st = SmoothQuantLayer(job, 8, o, &out);
    INFO(st.ToString());
    REQUIRE(st.ok());
    CHECK(m->layer(0).input_layernorm.scalar_type() == at::kBFloat16);
    CHECK(m->layer(0).post_attention_layernorm.scalar_type() == at::kBFloat16);
    CHECK(m->layer(0).q_proj.weight().scalar_type() == at::kBFloat16);
    if (moe) CHECK(m->layer(0).moe->gate.weight().scalar_type() == at::kBFloat16);
    for (size_t k = 0; k < xs.size(); ++k) {
      CHECK(xs[k].scalar_type() == at::kBFloat16);
      CHECK(at::equal(xs[k], fp->RunLayer(0, xs0[k], rope)));
      // W8 weights after smoothing, rounded to bf16: the dense layer stays within a few percent
      // of FP (measured 2.7%). Not for MoE: bf16 rounding of the rescaled router flips near-tied
      // top-k choices, and one re-routed token dominates a max-error measure.
      if (!moe) CHECK(RelDiff(m->RunLayer(0, xs0[k], rope), xs[k]) < 0.05);
    }
  }
}

TEST_CASE("Without smoothing SmoothQuantLayer is per-channel abs-max RTN of the FP weights",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Qwen3Config c = Config(moe);
    const Tensors w = Weights(c, 31, /*outliers=*/true);
    auto m = Build(c, w);
    auto fp = Build(c, w);
    const auto rope = m->MakeRope(8);
    SmoothQuantOptions o;
    o.smooth = false;
    for (bool with_inputs : {false, true}) {
      INFO("calibration inputs: " << with_inputs);
      auto mm = Build(c, w);
      std::vector<at::Tensor> xs =
          with_inputs ? Embed(*mm, Ids(2, 8, 3)) : std::vector<at::Tensor>{};
      const std::vector<at::Tensor> xs0 = xs;
      QuantizeResult out;
      LayerJob job = Job(*mm, 1, &xs, &rope);
      REQUIRE(SmoothQuantLayer(job, 3, o, &out).ok());
      REQUIRE(xs.size() == xs0.size());
      for (size_t k = 0; k < xs.size(); ++k) {
        CHECK(at::equal(xs[k], fp->RunLayer(1, xs0[k], rope)));
      }
      CHECK(at::equal(mm->layer(1).input_layernorm, fp->layer(1).input_layernorm));
      CHECK(
          at::equal(mm->layer(1).post_attention_layernorm, fp->layer(1).post_attention_layernorm));
      bitsweep::quant::QuantGrid g;
      g.bits = 3;
      g.group_size = -1;
      g.kind = bitsweep::quant::GridKind::kSymAbsMax;
      for (const auto& n : bitsweep::model::QuantizedLinears(fp->layer(1))) {
        INFO(n);
        auto ref = bitsweep::quant::RtnQuantize(FindLinearIn(fp->layer(1), n)->weight(), g);
        REQUIRE(ref.ok());
        const auto& q = out.weights.at("model.layers.1." + n);
        CHECK(at::equal(q.codes.to(at::kInt), ref->codes));
        CHECK(at::equal(q.scales, ref->scales));
        CHECK(at::equal(FindLinearIn(mm->layer(1), n)->weight(), ref->Dequantize()));
      }
      for (const auto& r : out.linears) {
        CHECK(r.stats.at("smoothed") == 0.0);
        CHECK(r.calib_tokens == -1);
      }
    }
  }
}

TEST_CASE("SmoothQuantLayer and InstallActivationQuantization reject bad arguments",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  const Qwen3Config c = Config(false);
  auto m = Build(c, Weights(c, 1, false));
  const auto rope = m->MakeRope(4);
  std::vector<at::Tensor> xs;
  QuantizeResult out;
  LayerJob job = Job(*m, 0, &xs, &rope);
  SmoothQuantOptions o;
  auto mentions = [](const Status& s, const std::string& word) {
    return s.code() == absl::StatusCode::kInvalidArgument &&
           std::string(s.message()).find(word) != std::string::npos;
  };
  o.smooth = false;
  CHECK(mentions(SmoothQuantLayer(job, 1, o, &out), "wbits"));
  CHECK(mentions(SmoothQuantLayer(job, 9, o, &out), "wbits"));
  o.alpha = -0.1;
  CHECK(mentions(SmoothQuantLayer(job, 8, o, &out), "alpha"));
  o.alpha = 0.5;
  o.smooth = true;
  CHECK(mentions(SmoothQuantLayer(job, 8, o, &out), "calibration inputs"));
  CHECK(out.linears.empty());
  CHECK(mentions(InstallActivationQuantization(*m, 1, false), "abits"));
  CHECK(mentions(InstallActivationQuantization(*m, 9, false), "abits"));
  CHECK_FALSE(m->layer(0).q_proj.has_input_hook());
}

TEST_CASE("InstallActivationQuantization is W8A8Linear.forward on every quantized linear",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Qwen3Config c = Config(moe);
    auto m = Build(c, Weights(c, 41, true));
    at::manual_seed(2);
    const at::Tensor x_h = at::randn({1, 6, c.hidden_size});
    for (bool qkv_out : {false, true}) {
      INFO("qkv_output " << qkv_out);
      REQUIRE(InstallActivationQuantization(*m, 4, qkv_out).ok());
      for (int64_t i = 0; i < m->num_layers(); ++i) {
        DecoderLayer& layer = m->layer(i);
        for (const auto& n : bitsweep::model::QuantizedLinears(layer)) {
          INFO(n);
          auto* lin = FindLinearIn(layer, n);
          REQUIRE(lin->has_input_hook());
          const at::Tensor x = at::randn({1, 6, lin->in_features()});
          at::Tensor want = at::matmul(FakeQuantizePerToken(x, 4), lin->weight().t());
          const bool qkv =
              n == "self_attn.q_proj" || n == "self_attn.k_proj" || n == "self_attn.v_proj";
          if (qkv && qkv_out) want = FakeQuantizePerToken(want, 4);
          CHECK(lin->has_output_hook() == (qkv && qkv_out));
          CHECK(at::equal(lin->Forward(x), want));
        }
        if (moe) {
          // The router stays FP.
          CHECK_FALSE(layer.moe->gate.has_input_hook());
          CHECK_FALSE(layer.moe->gate.has_output_hook());
          CHECK(at::equal(layer.moe->gate.Forward(x_h),
                          at::matmul(x_h, layer.moe->gate.weight().t())));
        }
      }
    }
  }
}

TEST_CASE("Activation quantization at 8 bits moves the logits little, at 2 bits a lot",
          "[quant][smoothquant]") {
  c10::InferenceMode guard;
  const Qwen3Config c = Config(false);
  const Tensors w = Weights(c, 51, /*outliers=*/false);
  auto fp = Build(c, w);
  const at::Tensor ids = Ids(1, 32, 6)[0];
  const at::Tensor ref = fp->Forward(ids);
  std::map<int, double> err;
  for (int abits : {8, 4, 2}) {
    auto m = Build(c, w);
    REQUIRE(InstallActivationQuantization(*m, abits, false).ok());
    err[abits] = RelDiff(m->Forward(ids), ref);
  }
  INFO("max |dlogit| / max |logit|: A8 " << err[8] << ", A4 " << err[4] << ", A2 " << err[2]);
  CHECK(err[8] > 0);
  CHECK(err[8] < 0.02);
  CHECK(err[4] > 4 * err[8]);
  CHECK(err[2] > 3 * err[4]);
}

TEST_CASE("With outlier channels smoothing lowers the W8A8 logit error", "[quant][smoothquant]") {
  c10::InferenceMode guard;
  const Qwen3Config c = Config(false);
  const Tensors w = Weights(c, 52, /*outliers=*/true);
  auto fp = Build(c, w);
  const at::Tensor ids = Ids(1, 32, 7)[0];
  const at::Tensor ref = fp->Forward(ids);
  bitsweep::quant::CalibrationSet calib;
  for (const auto& t : Ids(4, 32, 8)) {
    calib.samples.emplace_back(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  std::map<bool, double> err;
  for (bool smooth : {false, true}) {
    auto m = Build(c, w);
    // released_code is SmoothQuant without smoothing.
    bitsweep::QuantConfig qc;
    qc.method = "smoothquant";
    qc.wbits = 8;
    qc.options["released_code"] = smooth ? "false" : "true";
    bitsweep::quant::QuantizeOptions o;
    o.method = bitsweep::quant::MakeQuantizer(qc).value();
    auto r = bitsweep::quant::QuantizeModel(*m, &calib, o);
    INFO(r.status().ToString());
    REQUIRE(r.ok());
    REQUIRE(InstallActivationQuantization(*m, 8, false).ok());
    err[smooth] = RelDiff(m->Forward(ids), ref);
  }
  INFO("W8A8 max |dlogit| / max |logit|: plain " << err[false] << ", smoothed " << err[true]);
  CHECK(err[true] < 0.5 * err[false]);
}
