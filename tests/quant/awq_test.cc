// Pins quant/awq.cc and quant/awq_search.cc (docs/methods.md#awq): AWQ with one ratio and no clip
// is plain min-max RTN; the equivalent transformation keeps the FP layer (norm->fcs, v->o under
// GQA, up->down, the MoE router); the full method's invariants (codes in range, model weights =
// dequantized codes, next-layer inputs = FP outputs, chosen loss <= ratio-0 loss); the clip
// search and the post_attention_layernorm -> gate,up scale search against plain-loop
// references; MoE layers with the documented small-expert fallback; v->o skipping as llm-awq
// does; the errors.
// Headers that pull in ATen come before Catch2 so that Catch2's CHECK overrides glog's.
#include "quant/awq.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/arch.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/rtn.h"

namespace {

namespace model = bitsweep::model;
using bitsweep::quant::AwqApplyScale;
using bitsweep::quant::AwqClip;
using bitsweep::quant::AwqOptions;
using bitsweep::quant::AwqQuantizeLayer;
using bitsweep::quant::AwqSearchClip;
using bitsweep::quant::FindLinearIn;
using bitsweep::quant::GridKind;
using bitsweep::quant::LayerJob;
using bitsweep::quant::LinearReport;
using bitsweep::quant::QuantGrid;
using bitsweep::quant::QuantizedWeight;
using bitsweep::quant::QuantizeResult;
using bitsweep::quant::RtnQuantize;

// The scale transformation changes each output by a few fp32 roundings (norm / s, W * s) of
// the layer's own contribution; a wrong scale (or a forgotten consumer) changes it by O(1).
constexpr double kFunctionRelTol = 1e-4;
// Plain-loop references run in double and float where the implementation runs fp32 tensor ops
// (different summation orders): losses agree to this relative tolerance, and a ratio counts as
// optimal when its reference loss is within it of the reference minimum.
constexpr double kRefLossRelTol = 1e-3;
// The norm after scaling is orig / s with s from fp32 pow/sqrt vs double.
constexpr double kScaleRelTol = 1e-5;

QuantGrid Grid(int bits, int64_t group_size) {
  QuantGrid g;
  g.bits = bits;
  g.group_size = group_size;
  g.kind = GridKind::kMinMax;
  return g;
}

struct Tiny {
  std::unique_ptr<model::Qwen3Model> m;
  model::RopeTables rope;
  std::vector<at::Tensor> xs;
  LayerJob job;
};

// A one-layer tiny Qwen3 (hidden 64, 4 heads / 2 kv heads of 16: GQA) and `samples`
// calibration inputs of T tokens whose channels have very different magnitudes (what AWQ's
// activation-aware scaling is about).
std::unique_ptr<Tiny> MakeTiny(bool moe, uint64_t seed, int64_t samples = 3, int64_t T = 24) {
  model::TinyModelOptions o;
  o.moe = moe;
  o.num_layers = 1;
  const model::Qwen3Config c = model::TinyConfig(o, 64);
  auto m = model::Qwen3Model::FromTensors(c, model::RandomQwen3Weights(c, seed));
  REQUIRE(m.ok());
  auto t = std::make_unique<Tiny>();
  t->m = std::move(*m);
  t->rope = t->m->MakeRope(T);
  at::manual_seed(seed);
  const at::Tensor channel = at::exp(at::randn({c.hidden_size}) * 1.5);
  for (int64_t k = 0; k < samples; ++k) t->xs.push_back(at::randn({1, T, c.hidden_size}) * channel);
  t->job.model = t->m.get();
  t->job.index = 0;
  t->job.prefix = "model.layers.0.";
  t->job.xs = &t->xs;
  t->job.rope = &t->rope;
  return t;
}

std::vector<at::Tensor> FpOutputs(Tiny& t) {
  std::vector<at::Tensor> ys;
  for (const auto& x : t.xs) ys.push_back(t.m->RunLayer(0, x, t.rope));
  return ys;
}

std::map<std::string, at::Tensor> Weights(Tiny& t) {
  std::map<std::string, at::Tensor> w;
  for (auto& [n, lin] : t.m->layer(0).Linears()) w[n] = lin->weight().clone();
  return w;
}

QuantizeResult Run(Tiny& t, const QuantGrid& g, const AwqOptions& o) {
  QuantizeResult out;
  auto s = AwqQuantizeLayer(t.job, g, o, &out);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

const LinearReport& Report(const QuantizeResult& r, const std::string& name) {
  for (const auto& l : r.linears) {
    if (l.name == name) return l;
  }
  FAIL("no report for " << name);
  return r.linears.front();
}

// Codes compared by value: the driver stores them narrowed (QuantizedWeight::NarrowCodes).
void CheckSameQuantizedWeight(const QuantizedWeight& a, const QuantizedWeight& b) {
  CHECK(a.grid.kind == b.grid.kind);
  CHECK(at::equal(a.codes.to(at::kInt), b.codes.to(at::kInt)));
  CHECK(at::equal(a.scales, b.scales));
  CHECK(at::equal(a.zeros, b.zeros));
  CHECK(at::equal(a.g_idx, b.g_idx));
}

// max |a - b| / max |b|.
double RelDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

// llm-awq pseudo_quantize_tensor on one group, plain loops in fp32 (as the primitive computes).
void RefQuantGroup(float* w, int64_t n, int bits) {
  const float maxq = static_cast<float>((1 << bits) - 1);
  float mx = w[0], mn = w[0];
  for (int64_t k = 1; k < n; ++k) {
    mx = std::max(mx, w[k]);
    mn = std::min(mn, w[k]);
  }
  const float scale = std::max(mx - mn, 1e-5f) / maxq;
  const float zero = std::min(std::max(-std::nearbyint(mn / scale), 0.0f), maxq);
  for (int64_t k = 0; k < n; ++k) {
    const float q = std::min(std::max(std::nearbyint(w[k] / scale) + zero, 0.0f), maxq);
    w[k] = (q - zero) * scale;
  }
}

using Matrix = std::vector<std::vector<double>>;

Matrix ToMatrix(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kDouble).contiguous();
  const auto a = c.accessor<double, 2>();
  Matrix m(c.size(0), std::vector<double>(c.size(1)));
  for (int64_t i = 0; i < c.size(0); ++i) {
    for (int64_t j = 0; j < c.size(1); ++j) m[i][j] = a[i][j];
  }
  return m;
}

// Q(W * s) / s, every [row, group] quantized by RefQuantGroup.
Matrix RefScaledQuant(const Matrix& w, const std::vector<double>& s, int64_t gs, int bits) {
  Matrix out = w;
  std::vector<float> buf(gs);
  for (auto& row : out) {
    for (size_t g0 = 0; g0 < row.size(); g0 += gs) {
      for (int64_t k = 0; k < gs; ++k) buf[k] = static_cast<float>(row[g0 + k] * s[g0 + k]);
      RefQuantGroup(buf.data(), gs, bits);
      for (int64_t k = 0; k < gs; ++k) row[g0 + k] = buf[k] / s[g0 + k];
    }
  }
  return out;
}

// down(silu(gate x) * up x) for every token of x, in double.
Matrix RefMlp(const Matrix& x, const Matrix& wg, const Matrix& wu, const Matrix& wd) {
  Matrix out(x.size(), std::vector<double>(wd.size(), 0.0));
  std::vector<double> h(wg.size());
  for (size_t t = 0; t < x.size(); ++t) {
    for (size_t r = 0; r < wg.size(); ++r) {
      double g = 0, u = 0;
      for (size_t c = 0; c < x[t].size(); ++c) {
        g += wg[r][c] * x[t][c];
        u += wu[r][c] * x[t][c];
      }
      h[r] = g / (1 + std::exp(-g)) * u;
    }
    for (size_t o = 0; o < wd.size(); ++o) {
      double y = 0;
      for (size_t r = 0; r < h.size(); ++r) y += wd[o][r] * h[r];
      out[t][o] = y;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("AWQ with one ratio (s = 1) and no clip is plain min-max RTN of every linear",
          "[quant][awq]") {
  const bool moe = GENERATE(false, true);
  const int64_t group = GENERATE(int64_t{-1}, int64_t{32});
  auto t = MakeTiny(moe, 11);
  const auto orig = Weights(*t);
  const at::Tensor in_norm = t->m->layer(0).input_layernorm.clone();
  const at::Tensor post_norm = t->m->layer(0).post_attention_layernorm.clone();
  const auto ys = FpOutputs(*t);
  AwqOptions o;
  o.n_grid = 1;
  o.clip = false;
  QuantGrid g = Grid(3, group);
  g.kind = GridKind::kMinMaxWithZero;  // forced to kMinMax by AWQ
  const QuantizeResult r = Run(*t, g, o);

  const auto names = model::QuantizedLinears(t->m->layer(0));
  REQUIRE(r.linears.size() == names.size());
  REQUIRE(r.weights.size() == names.size());
  for (const auto& n : names) {
    INFO(n);
    auto want = RtnQuantize(orig.at(n), Grid(3, group));
    REQUIRE(want.ok());
    CheckSameQuantizedWeight(r.weights.at("model.layers.0." + n), *want);
    CHECK(at::equal(FindLinearIn(t->m->layer(0), n)->weight(), want->Dequantize()));
  }
  CHECK(at::equal(t->m->layer(0).input_layernorm, in_norm));
  CHECK(at::equal(t->m->layer(0).post_attention_layernorm, post_norm));
  if (moe) CHECK(at::equal(t->m->layer(0).moe->gate.weight(), orig.at("mlp.gate")));
  REQUIRE(t->xs.size() == ys.size());
  for (size_t k = 0; k < ys.size(); ++k) CHECK(at::equal(t->xs[k], ys[k]));
}

TEST_CASE("Qwen3Model::SelfAttention (AWQ's self_attn module) is RunLayer's attention sub-block",
          "[quant][awq]") {
  auto t = MakeTiny(false, 10);
  const model::DecoderLayer& l = t->m->layer(0);
  const double eps = t->m->config().rms_norm_eps;
  for (const auto& x : t->xs) {
    const at::Tensor h =
        x + t->m->SelfAttention(0, model::RmsNorm(x, l.input_layernorm, eps), t->rope);
    const at::Tensor y = h + l.mlp->Forward(model::RmsNorm(h, l.post_attention_layernorm, eps));
    CHECK(at::equal(y, t->m->RunLayer(0, x, t->rope)));
  }
}

TEST_CASE("AWQ scale application keeps the FP layer: norm->fcs, v->o under GQA, up->down, router",
          "[quant][awq]") {
  const bool moe = GENERATE(false, true);
  auto t = MakeTiny(moe, 12);
  const auto ys = FpOutputs(*t);
  const auto orig = Weights(*t);
  model::DecoderLayer& layer = t->m->layer(0);
  const auto& c = t->m->config();
  const auto groups =
      model::ScalingGroups(layer, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
  bool saw_gqa = false;
  at::manual_seed(3);
  for (const auto& gr : groups) {
    const int64_t n = FindLinearIn(layer, gr.linears.front())->in_features() /
                      std::max<int64_t>(1, gr.repeat_groups);
    saw_gqa = saw_gqa || gr.repeat_groups > 1;
    const at::Tensor s = at::exp(at::randn({n}) * 0.5);
    auto st = AwqApplyScale(layer, gr, s);
    INFO(st.ToString());
    REQUIRE(st.ok());
  }
  CHECK(saw_gqa);
  // Every linear was transformed (the test would pass vacuously otherwise).
  for (const auto& [n, w] : orig) {
    INFO(n);
    CHECK_FALSE(at::allclose(FindLinearIn(layer, n)->weight(), w));
  }
  for (size_t k = 0; k < ys.size(); ++k) {
    const at::Tensor y = t->m->RunLayer(0, t->xs[k], t->rope);
    CHECK(RelDiff(y - t->xs[k], ys[k] - t->xs[k]) < kFunctionRelTol);
  }
}

TEST_CASE(
    "AWQ quantizes every linear: codes in range, model weights are the dequantized codes, "
    "next-layer inputs are the FP outputs, chosen loss <= ratio-0 loss",
    "[quant][awq]") {
  const int64_t group = GENERATE(int64_t{-1}, int64_t{32});
  const bool duo = GENERATE(false, true);
  auto t = MakeTiny(false, 13);
  const auto ys = FpOutputs(*t);
  AwqOptions o;
  o.duo_scaling = duo;
  const QuantGrid g = Grid(3, group);
  const QuantizeResult r = Run(*t, g, o);
  for (const auto& n : model::QuantizedLinears(t->m->layer(0))) {
    INFO(n);
    const QuantizedWeight& q = r.weights.at("model.layers.0." + n);
    CHECK(q.grid.kind == GridKind::kMinMax);
    CHECK(q.codes.min().item<int>() >= 0);
    CHECK(q.codes.max().item<int>() <= 7);
    CHECK(at::equal(FindLinearIn(t->m->layer(0), n)->weight(), q.Dequantize()));
    const std::string name = "model.layers.0." + n;
    const LinearReport& rep = Report(r, name);
    CHECK(rep.calib_tokens == 3 * 24);
    REQUIRE(rep.stats.count("ratio") == 1);  // every group searched (scale_v_to_o)
    CHECK(rep.stats.at("ratio") >= 0);
    CHECK(rep.stats.at("ratio") < 1);
    CHECK(rep.loss <= rep.stats.at("ratio0_loss"));
    CHECK(rep.loss > 0);
    const bool clipped = n.find("q_") == std::string::npos && n.find("k_") == std::string::npos;
    CHECK(rep.stats.count("clip_shrink_mean") == (clipped ? 1u : 0u));
  }
  for (size_t k = 0; k < ys.size(); ++k) CHECK(at::equal(t->xs[k], ys[k]));
}

TEST_CASE(
    "AWQ clip search picks the per-(row, group) minimum of a plain-loop reference and "
    "never increases the error over no clipping",
    "[quant][awq]") {
  at::manual_seed(21);
  const int64_t out = 12, in = 64, gs = 16, tokens = 100;
  const int bits = 3;
  const at::Tensor w = at::randn({out, in}) * 0.05;
  // Heavy-tailed weights make clipping worthwhile in some groups.
  const at::Tensor wt = w * at::exp(at::randn({out, in}));
  const at::Tensor x = at::randn({tokens, in}) * at::exp(at::randn({in}));
  AwqOptions o;
  o.clip_tokens = 30;  // stride 100 / 30 = 3: tokens 0, 3, ..., 99
  auto r = AwqSearchClip(wt, x, Grid(bits, gs), o);
  REQUIRE(r.ok());
  const int64_t step = tokens / o.clip_tokens;
  const Matrix W = ToMatrix(wt), X = ToMatrix(x);
  const auto steps = r->steps.accessor<int64_t, 2>();
  const auto max_val = r->max_val.accessor<float, 2>();
  int clipped = 0;
  for (int64_t row = 0; row < out; ++row) {
    for (int64_t g0 = 0; g0 < in; g0 += gs) {
      float org_max = 0;
      for (int64_t k = 0; k < gs; ++k)
        org_max = std::max(org_max, std::fabs(float(W[row][g0 + k])));
      std::vector<double> err;
      for (int i_s = 0; i_s < 10; ++i_s) {
        const float mv = org_max * static_cast<float>(1.0 - i_s / 20.0);
        std::vector<float> q(gs);
        for (int64_t k = 0; k < gs; ++k) {
          q[k] = std::min(std::max(float(W[row][g0 + k]), -mv), mv);
        }
        RefQuantGroup(q.data(), gs, bits);
        double e = 0;
        int64_t n = 0;
        for (int64_t tk = 0; tk < tokens; tk += step, ++n) {
          double d = 0;
          for (int64_t k = 0; k < gs; ++k) d += X[tk][g0 + k] * (q[k] - W[row][g0 + k]);
          e += d * d;
        }
        err.push_back(e / n);
      }
      const int64_t s = steps[row][g0 / gs];
      INFO("row " << row << " group " << g0 / gs << " step " << s);
      REQUIRE(s >= 0);
      REQUIRE(s < 10);
      const double best = *std::min_element(err.begin(), err.end());
      CHECK(err[s] <= err[0] * (1 + 1e-6));
      CHECK(err[s] <= best * (1 + kRefLossRelTol));
      CHECK(max_val[row][g0 / gs] == Approx(org_max * (1.0 - s / 20.0)).epsilon(1e-6));
      clipped += s > 0;
    }
  }
  CHECK(clipped > 0);
}

TEST_CASE(
    "AWQ scale search of post_attention_layernorm -> gate,up agrees with a plain-loop "
    "reference",
    "[quant][awq]") {
  const bool duo = GENERATE(false, true);
  const int bits = 3;
  const int64_t gs = 32;
  const int n_grid = 20;
  auto t = MakeTiny(false, 14);
  model::DecoderLayer& layer = t->m->layer(0);
  // The MLP's input features, captured on the FP layer.
  std::vector<at::Tensor> seen;
  layer.mlp->gate_proj.SetInputHook([&seen](const at::Tensor& x) {
    seen.push_back(x.reshape({-1, x.size(-1)}));
    return x;
  });
  (void)FpOutputs(*t);
  layer.mlp->gate_proj.SetInputHook(nullptr);
  const Matrix X = ToMatrix(at::cat(seen, 0));
  const Matrix wg = ToMatrix(layer.mlp->gate_proj.weight());
  const Matrix wu = ToMatrix(layer.mlp->up_proj.weight());
  const Matrix wd = ToMatrix(layer.mlp->down_proj.weight());
  const at::Tensor post_norm = layer.post_attention_layernorm.clone();
  const size_t H = X[0].size();

  AwqOptions o;
  o.duo_scaling = duo;
  o.clip = false;
  o.n_grid = n_grid;
  const QuantizeResult r = Run(*t, Grid(bits, gs), o);
  const std::string gate = "model.layers.0.mlp.gate_proj";
  const LinearReport& rep = Report(r, gate);
  REQUIRE(rep.stats.count("ratio") == 1);
  const int k_impl = static_cast<int>(std::lround(rep.stats.at("ratio") * n_grid));

  // The search as llm-awq / AutoAWQ write it, in plain loops.
  std::vector<double> x_mean(H, 0.0), w_mean(H, 0.0);
  for (const auto& row : X) {
    for (size_t c = 0; c < H; ++c) x_mean[c] += std::fabs(row[c]) / X.size();
  }
  Matrix wcat = wg;
  wcat.insert(wcat.end(), wu.begin(), wu.end());
  for (const auto& row : wcat) {
    for (size_t g0 = 0; g0 < H; g0 += gs) {
      double mx = 0;
      for (int64_t k = 0; k < gs; ++k) mx = std::max(mx, std::fabs(row[g0 + k]));
      for (int64_t k = 0; k < gs; ++k) {
        w_mean[g0 + k] += std::fabs(row[g0 + k]) / (mx + 1e-6) / wcat.size();
      }
    }
  }
  const Matrix org = RefMlp(X, wg, wu, wd);
  std::vector<double> loss;
  std::vector<std::vector<double>> scales;
  for (int k = 0; k < n_grid; ++k) {
    const double ratio = static_cast<double>(k) / n_grid;
    std::vector<double> s(H);
    for (size_t c = 0; c < H; ++c) {
      s[c] = duo ? std::pow(x_mean[c], ratio) / (std::pow(w_mean[c], 1 - ratio) + 1e-4)
                 : std::pow(x_mean[c], ratio);
      s[c] = std::max(s[c], 1e-4);
    }
    const double norm =
        std::sqrt(*std::max_element(s.begin(), s.end()) * *std::min_element(s.begin(), s.end()));
    for (auto& v : s) v /= norm;
    const Matrix y =
        RefMlp(X, RefScaledQuant(wg, s, gs, bits), RefScaledQuant(wu, s, gs, bits), wd);
    double e = 0;
    for (size_t tk = 0; tk < y.size(); ++tk) {
      for (size_t j = 0; j < y[tk].size(); ++j)
        e += (y[tk][j] - org[tk][j]) * (y[tk][j] - org[tk][j]);
    }
    loss.push_back(e / (y.size() * y[0].size()));
    scales.push_back(s);
  }
  const double best = *std::min_element(loss.begin(), loss.end());
  INFO("impl ratio index " << k_impl << ", reference best " << best << " at index "
                           << std::min_element(loss.begin(), loss.end()) - loss.begin());
  REQUIRE(k_impl >= 0);
  REQUIRE(k_impl < n_grid);
  CHECK(loss[k_impl] <= best * (1 + kRefLossRelTol));
  CHECK(rep.loss == Approx(loss[k_impl]).epsilon(kRefLossRelTol));
  CHECK(rep.stats.at("ratio0_loss") == Approx(loss[0]).epsilon(kRefLossRelTol));
  // The chosen scale went into the norm: post_attention_layernorm = orig / s.
  const auto pn = post_norm.accessor<float, 1>();
  const auto now = layer.post_attention_layernorm.accessor<float, 1>();
  for (size_t c = 0; c < H; ++c) {
    INFO("channel " << c);
    CHECK(now[c] == Approx(pn[c] / scales[k_impl][c]).epsilon(kScaleRelTol));
  }
}

TEST_CASE("AWQ runs through a MoE layer, experts with few routed tokens keep s = 1 with a note",
          "[quant][awq]") {
  auto t = MakeTiny(true, 15);
  model::DecoderLayer& layer = t->m->layer(0);
  const int64_t n_experts = static_cast<int64_t>(layer.moe->experts.size());
  // Routed tokens per expert on the FP layer, to set the threshold between the extremes.
  std::vector<int64_t> count(n_experts, 0);
  for (int64_t e = 0; e < n_experts; ++e) {
    int64_t* c = &count[e];
    layer.moe->experts[e].down_proj.SetInputHook([c](const at::Tensor& x) {
      *c += x.size(0);
      return x;
    });
  }
  const auto ys = FpOutputs(*t);
  for (auto& ex : layer.moe->experts) ex.down_proj.SetInputHook(nullptr);
  std::vector<int64_t> sorted = count;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(sorted.front() < sorted.back());
  t->job.min_expert_tokens =
      sorted[n_experts / 2] > sorted.front() ? sorted[n_experts / 2] : sorted.back();
  const auto orig = Weights(*t);
  const QuantizeResult r = Run(*t, Grid(4, 16), AwqOptions{});

  const auto names = model::QuantizedLinears(layer);
  CHECK(r.linears.size() == names.size());
  CHECK(r.weights.count("model.layers.0.mlp.gate") == 0);  // the router stays FP
  int skipped = 0, searched = 0;
  for (int64_t e = 0; e < n_experts; ++e) {
    const std::string down = "mlp.experts." + std::to_string(e) + ".down_proj";
    INFO(down << " with " << count[e] << " tokens");
    const std::string name = "model.layers.0." + down;
    const LinearReport& rep = Report(r, name);
    CHECK(rep.calib_tokens == count[e]);
    if (count[e] < t->job.min_expert_tokens) {
      ++skipped;
      CHECK(rep.note.find("up->down scale search skipped") != std::string::npos);
      CHECK(rep.note.find("clip search skipped") != std::string::npos);
      CHECK(rep.stats.count("ratio") == 0);
      // No scale, no clip: exactly the RTN of the original weight.
      auto want = RtnQuantize(orig.at(down), Grid(4, 16));
      REQUIRE(want.ok());
      CheckSameQuantizedWeight(r.weights.at("model.layers.0." + down), *want);
    } else {
      ++searched;
      CHECK(rep.note.empty());
      REQUIRE(rep.stats.count("ratio") == 1);
      CHECK(rep.loss <= rep.stats.at("ratio0_loss"));
    }
  }
  CHECK(skipped > 0);
  CHECK(searched > 0);
  // The router took the gate/up group's column scaling.
  CHECK_FALSE(at::equal(layer.moe->gate.weight(), orig.at("mlp.gate")));
  for (size_t k = 0; k < ys.size(); ++k) CHECK(at::equal(t->xs[k], ys[k]));
}

TEST_CASE(
    "AWQ v->o under GQA: shared per-kv-group scale by default, skipped like llm-awq "
    "without scale_v_to_o",
    "[quant][awq]") {
  const std::string o_name = "model.layers.0.self_attn.o_proj";
  {
    auto t = MakeTiny(false, 16);
    AwqOptions o;
    o.clip = false;
    const QuantizeResult r = Run(*t, Grid(3, 32), o);
    CHECK(Report(r, o_name).stats.count("ratio") == 1);
    CHECK(Report(r, o_name).note.empty());
  }
  auto t = MakeTiny(false, 16);
  const at::Tensor o_orig = t->m->layer(0).o_proj.weight().clone();
  AwqOptions o;
  o.clip = false;
  o.scale_v_to_o = false;
  const QuantizeResult r = Run(*t, Grid(3, 32), o);
  const LinearReport& rep = Report(r, o_name);
  CHECK(rep.stats.count("ratio") == 0);
  CHECK(rep.note.find("v_proj->o_proj scaling skipped") != std::string::npos);
  CHECK(rep.loss > 0);
  auto want = RtnQuantize(o_orig, Grid(3, 32));
  REQUIRE(want.ok());
  CheckSameQuantizedWeight(r.weights.at(o_name), *want);
}

TEST_CASE("AWQ rejects bad arguments with InvalidArgument", "[quant][awq]") {
  auto t = MakeTiny(false, 17, 1, 8);
  QuantizeResult out;
  AwqOptions o;
  o.n_grid = 0;
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(t->job, Grid(3, -1), o, &out)));
  o = AwqOptions{};
  o.max_shrink = 1.5;
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(t->job, Grid(3, -1), o, &out)));
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(t->job, Grid(3, 48), AwqOptions{}, &out)));
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(t->job, Grid(3, -1), AwqOptions{}, nullptr)));
  std::vector<at::Tensor> empty;
  LayerJob job = t->job;
  job.xs = &empty;
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(job, Grid(3, -1), AwqOptions{}, &out)));
  std::vector<at::Tensor> wrong_len = {at::randn({1, 9, 64})};
  job.xs = &wrong_len;
  CHECK(absl::IsInvalidArgument(AwqQuantizeLayer(job, Grid(3, -1), AwqOptions{}, &out)));
  CHECK(out.linears.empty());
  CHECK(absl::IsInvalidArgument(
      AwqSearchClip(at::randn({4, 32}), at::randn({10, 16}), Grid(3, -1), AwqOptions{}).status()));
  CHECK(absl::IsInvalidArgument(
      AwqSearchClip(at::randn({4, 32}), at::randn({10, 32}), Grid(3, 24), AwqOptions{}).status()));
}
