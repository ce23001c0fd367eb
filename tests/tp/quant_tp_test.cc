// Quantization under tensor parallelism (quant/tensor_parallel.h) on CPU with Gloo: every
// method's quantized weights and the quantized model's logits match the single-device run.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "common/catalog.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/quantize_model.h"
#include "quant/smoothquant.h"
#include "tests/testing/tp_ranks.h"

namespace {

using bitsweep::model::Collective;
using bitsweep::model::LoadOptions;
using bitsweep::model::Qwen3Model;
using Method = std::string;  // a method of the catalog (common/catalog.h)

struct Run {
  std::map<std::string, at::Tensor> weights;  // dequantized whole weights by module name
  std::map<std::string, at::Tensor> codes;
  std::map<std::string, std::map<std::string, double>> stats;  // LinearReport::stats by name
  at::Tensor logits;
  double loss = 0;
};

struct Setup {
  bitsweep::model::Qwen3Config config;
  std::map<std::string, at::Tensor> tensors;
  bitsweep::quant::CalibrationSet calib;
  at::Tensor ids;
};

// `kv_heads` 4 splits over 2 and 4 ranks, 3 over 3 (twice as many query heads; hidden and MLP
// widths to match).
Setup MakeSetup(bool moe, int kv_heads = 4) {
  bitsweep::model::TinyModelOptions o;
  o.moe = moe;
  o.seed = moe ? 21 : 17;
  o.num_heads = 2 * kv_heads;
  o.num_kv_heads = kv_heads;
  o.head_dim = 16;
  o.hidden_size = 16 * kv_heads;
  o.intermediate_size = 32 * kv_heads;
  o.moe_intermediate_size = kv_heads == 3 ? 48 : 32;  // split by the ranks, groups of 16
  o.num_experts = 4;
  o.tie_word_embeddings = false;
  o.vocab_size = 256;
  Setup s;
  s.config = bitsweep::model::TinyConfig(o, o.vocab_size);
  s.tensors = bitsweep::model::RandomQwen3Weights(s.config, o.seed);
  at::manual_seed(5);
  const at::Tensor calib = at::randint(o.vocab_size, {8, 32}, at::kInt);
  for (int64_t i = 0; i < calib.size(0); ++i) {
    const int32_t* p = calib[i].data_ptr<int32_t>();
    s.calib.samples.emplace_back(p, p + calib.size(1));
  }
  s.ids = at::randint(o.vocab_size, {2, 16}, at::kLong);
  return s;
}

bitsweep::quant::QuantizeOptions Options(const Method& method) {
  // 4 bits (SmoothQuant 8) in groups of 16 where the method takes a group; GPTQ with act_order.
  const bitsweep::MethodInfo& row = **bitsweep::LookupMethod(method);
  bitsweep::QuantConfig qc;
  qc.method = method;
  qc.wbits = std::clamp(row.takes_abits ? 8 : 4, row.min_wbits, row.max_wbits);
  qc.group_size = row.group_size_applies ? 16 : -1;
  if (method == "gptq") qc.options["act_order"] = "true";
  bitsweep::quant::QuantizeOptions o;
  o.method = bitsweep::quant::MakeQuantizer(qc).value();
  o.min_expert_tokens = 4;
  return o;
}

Run Quantize(const Setup& s, const Method& method, std::shared_ptr<const Collective> tp) {
  c10::InferenceMode guard;
  LoadOptions lo;
  lo.tp = std::move(tp);
  auto m = Qwen3Model::FromTensors(s.config, s.tensors, lo);
  if (!m.ok()) throw std::runtime_error(m.status().ToString());
  auto r = bitsweep::quant::QuantizeModel(**m, &s.calib, Options(method));
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  if (method == Method("smoothquant")) {
    auto st = bitsweep::quant::InstallActivationQuantization(**m, 8, true);
    if (!st.ok()) throw std::runtime_error(st.ToString());
  }
  Run run;
  for (auto& [name, q] : r->weights) {
    run.weights[name] = q.Dequantize();
    run.codes[name] = q.codes;
  }
  for (const auto& l : r->linears) {
    run.loss += l.loss;
    run.stats[l.name] = l.stats;
  }
  run.logits = (*m)->Forward(s.ids);
  return run;
}

void CheckSame(const Run& whole, const Run& split, double code_tolerance,
               bool activations_quantized) {
  REQUIRE(whole.weights.size() == split.weights.size());
  int64_t codes = 0, differing = 0;
  double worst = 0;
  for (const auto& [name, w] : whole.weights) {
    INFO(name);
    REQUIRE(split.weights.count(name) == 1);
    REQUIRE(split.weights.at(name).sizes().equals(w.sizes()));
    codes += w.numel();
    differing += whole.codes.at(name).ne(split.codes.at(name)).sum().item<int64_t>();
    worst = std::max(
        worst,
        ((split.weights.at(name) - w).abs().max() / w.abs().max().clamp_min(1e-12)).item<double>());
  }
  INFO("codes differing: " << differing << " of " << codes << ", worst weight diff " << worst);
  // Rounding ties broken differently by the last bit of a reduction flip a code now and then;
  // anything systematic (a lost Hessian block, an unreduced statistic) flips many.
  CHECK(differing <= code_tolerance * codes);
  if (differing == 0) CHECK(worst < 1e-5);
  CHECK(std::abs(split.loss - whole.loss) <= 1e-3 * std::abs(whole.loss) + 1e-9);
  const double logit_diff =
      ((split.logits - whole.logits).abs().max() / whole.logits.abs().max()).item<double>();
  // SmoothQuant's activations are rounded per token at run time: a last-bit difference in a
  // hidden state can flip one activation code, which moves that token (and, through K/V, the
  // later tokens of its row) by about one 8-bit step (seen: one flip, 3e-3 relative).
  const bool continuous = differing == 0 && !activations_quantized;
  CHECK(logit_diff < (continuous ? 1e-5 : 1e-2));
}

TEST_CASE("Every method quantizes a model split over 2 ranks as it quantizes the whole model",
          "[tp][quant]") {
  for (bool moe : {false, true}) {
    const Setup s = MakeSetup(moe);
    for (const Method& method :
         {Method("rtn"), Method("gptq"), Method("awq"), Method("smoothquant"), Method("billm")}) {
      INFO((moe ? "MoE " : "dense ") << method);
      const Run whole = Quantize(s, method, nullptr);
      auto split = bitsweep::testing::RunRanks(
          2, [&](int, std::shared_ptr<const Collective> tp) { return Quantize(s, method, tp); });
      for (const Run& r : split) CheckSame(whole, r, 1e-3, method == Method("smoothquant"));
    }
  }
}

TEST_CASE("GPTQ over 4 ranks keeps the error compensation of the row-parallel linears",
          "[tp][quant]") {
  const Setup s = MakeSetup(false);
  const Run whole = Quantize(s, Method("gptq"), nullptr);
  auto split = bitsweep::testing::RunRanks(4, [&](int, std::shared_ptr<const Collective> tp) {
    return Quantize(s, Method("gptq"), tp);
  });
  for (const Run& r : split) CheckSame(whole, r, 1e-3, false);
}

TEST_CASE("AWQ's scale and clip searches shared by 3 ranks make the whole model's choices",
          "[tp][quant]") {
  // 3 ranks: 20 scale ratios and the clip row batches do not split evenly.
  for (bool moe : {false, true}) {
    INFO((moe ? "MoE" : "dense"));
    const Setup s = MakeSetup(moe, 3);
    const Run whole = Quantize(s, Method("awq"), nullptr);
    auto split = bitsweep::testing::RunRanks(3, [&](int, std::shared_ptr<const Collective> tp) {
      return Quantize(s, Method("awq"), tp);
    });
    for (const Run& r : split) {
      CheckSame(whole, r, 1e-3, false);
      REQUIRE(r.stats.size() == whole.stats.size());
      int64_t searched = 0, clipped = 0;
      for (const auto& [name, stats] : whole.stats) {
        INFO(name);
        // The chosen ratio and the mean chosen clip step of every linear, as the whole run.
        CHECK(r.stats.at(name) == stats);
        searched += stats.count("ratio");
        clipped += stats.count("clip_shrink_mean");
      }
      CHECK(searched > 0);
      CHECK(clipped > 0);
    }
  }
}

}  // namespace
