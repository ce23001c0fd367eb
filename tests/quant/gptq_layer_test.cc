// GPTQ's layer driver: one pass through a dense layer's stages for the true-sequential groups.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <vector>

#include "common/catalog.h"
#include "model/arch.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"
#include "quant/gptq.h"
#include "quant/layer_job.h"
#include "quant/method.h"
#include "quant/tensor_parallel.h"

namespace {

using bitsweep::model::Qwen3Model;
using bitsweep::quant::QuantizedWeight;

std::unique_ptr<Qwen3Model> TinyDense() {
  bitsweep::model::TinyModelOptions o;
  o.seed = 9;
  const auto config = bitsweep::model::TinyConfig(o, 256);
  auto m = Qwen3Model::FromTensors(config, bitsweep::model::RandomQwen3Weights(config, 9));
  REQUIRE(m.ok());
  return std::move(m).value();
}

}  // namespace

TEST_CASE("GPTQ's one pass through a dense layer gives the weights and next-layer inputs of one "
          "forward per true-sequential group, bit for bit",
          "[gptq]") {
  c10::InferenceMode guard;
  bitsweep::QuantConfig qc;
  qc.method = "gptq";
  qc.wbits = 3;
  qc.group_size = 16;
  qc.options["act_order"] = "true";
  auto quantizer = bitsweep::quant::MakeQuantizer(qc);
  REQUIRE(quantizer.ok());
  const auto& options = (*quantizer)->config().options;
  REQUIRE(bitsweep::OptionBool(options, "true_sequential"));
  bitsweep::quant::GptqOptions g;
  g.grid = (*quantizer)->grid();
  g.percdamp = bitsweep::OptionDouble(options, "percdamp");
  g.blocksize = bitsweep::OptionInt(options, "blocksize");
  g.act_order = true;

  auto driven = TinyDense();
  auto reference = TinyDense();
  at::manual_seed(2);
  std::vector<at::Tensor> xs_driven, xs_reference;
  for (int s = 0; s < 3; ++s) {
    xs_driven.push_back(at::randn({1, 48, driven->config().hidden_size}));
    xs_reference.push_back(xs_driven.back().clone());
  }
  const auto rope = driven->MakeRope(48);

  for (int64_t i = 0; i < driven->num_layers(); ++i) {
    INFO("layer " << i);
    bitsweep::quant::QuantizeResult got;
    bitsweep::quant::LayerJob job;
    job.model = driven.get();
    job.index = i;
    job.prefix = "model.layers." + std::to_string(i) + ".";
    job.xs = &xs_driven;
    job.rope = &rope;
    REQUIRE((*quantizer)->QuantizeLayer(job, &got).ok());

    // The reference: one whole-layer forward per group, hooks accumulating each linear's
    // Hessian, then GPTQ of each linear of the group, then one more forward for the outputs.
    std::map<std::string, QuantizedWeight> want;
    bitsweep::quant::LayerJob rjob = job;
    rjob.model = reference.get();
    rjob.xs = &xs_reference;
    for (const auto& group : bitsweep::model::SequentialGroups(reference->layer(i), true)) {
      auto lh = bitsweep::quant::CollectHessians(rjob, group);
      REQUIRE(lh.ok());
      for (size_t k = 0; k < group.size(); ++k) {
        auto q = bitsweep::quant::QuantizeRowsSharded(
            *reference->tp(), *lh->linears[k],
            [&](const at::Tensor& rows) -> bitsweep::StatusOr<QuantizedWeight> {
              auto r = bitsweep::quant::GptqQuantize(rows, lh->h[k]->H(), g);
              if (!r.ok()) return r.status();
              return std::move(r->weight);
            });
        REQUIRE(q.ok());
        want.emplace(job.prefix + group[k], *q);
      }
    }
    for (at::Tensor& x : xs_reference) x = reference->RunLayer(i, x, rope);

    REQUIRE(got.weights.size() == want.size());
    for (const auto& [name, w] : want) {
      INFO(name);
      const QuantizedWeight& q = got.weights.at(name);
      CHECK(q.codes.scalar_type() == at::kByte);  // held narrowed until the layer is written
      CHECK(at::equal(q.codes.to(at::kInt), w.codes));
      CHECK(at::equal(q.scales, w.scales));
      CHECK(at::equal(q.zeros, w.zeros));
      CHECK(at::equal(q.g_idx, w.g_idx));
    }
    for (size_t s = 0; s < xs_driven.size(); ++s) CHECK(at::equal(xs_driven[s], xs_reference[s]));
    for (const auto& r : got.linears) CHECK(r.calib_tokens == 3 * 48);
  }
}

TEST_CASE("Linears that read the same input share one Hessian, equal to each linear's own and "
          "counting the same tokens",
          "[gptq][hessian]") {
  c10::InferenceMode guard;
  for (const bool moe : {false, true}) {
    INFO("moe " << moe);
    bitsweep::model::TinyModelOptions o;
    o.seed = 4;
    o.moe = moe;
    const auto config = bitsweep::model::TinyConfig(o, 256);
    auto m = Qwen3Model::FromTensors(config, bitsweep::model::RandomQwen3Weights(config, 4));
    REQUIRE(m.ok());
    Qwen3Model& model = **m;
    at::manual_seed(6);
    std::vector<at::Tensor> xs = {at::randn({1, 40, config.hidden_size}),
                                  at::randn({1, 40, config.hidden_size})};
    const auto rope = model.MakeRope(40);
    bitsweep::quant::LayerJob job;
    job.model = &model;
    job.index = 0;
    job.prefix = "model.layers.0.";
    job.xs = &xs;
    job.rope = &rope;
    const std::vector<std::string> names = bitsweep::model::QuantizedLinears(model.layer(0));
    auto lh = bitsweep::quant::CollectHessians(job, names);
    REQUIRE(lh.ok());

    // Each linear's own accumulator, fed by a hook of its own over the same forward.
    std::vector<std::unique_ptr<bitsweep::quant::HessianAccumulator>> own;
    std::vector<int64_t> own_tokens(names.size(), 0);
    for (size_t k = 0; k < names.size(); ++k) {
      own.push_back(std::make_unique<bitsweep::quant::HessianAccumulator>(
          lh->linears[k]->in_features(), model.device()));
      auto* h = own.back().get();
      int64_t* count = &own_tokens[k];
      lh->linears[k]->SetInputHook([h, count](const at::Tensor& x) {
        h->Add(x, 1);
        *count += x.numel() / x.size(-1);
        return x;
      });
    }
    for (const at::Tensor& x : xs) (void)model.RunLayer(0, x, rope);
    for (auto* lin : lh->linears) lin->SetInputHook(nullptr);

    std::map<std::string, const bitsweep::quant::HessianAccumulator*> by_key;
    int64_t shared = 0;
    for (size_t k = 0; k < names.size(); ++k) {
      INFO(names[k]);
      CHECK(at::equal(lh->h[k]->H(), own[k]->H()));
      CHECK(lh->tokens[k] == own_tokens[k]);
      const auto [it, first] =
          by_key.emplace(bitsweep::model::SharedInputKey(names[k]), lh->h[k].get());
      CHECK(it->second == lh->h[k].get());  // one accumulator per shared input
      if (!first) ++shared;
    }
    // q/k/v share one; gate/up share one per MLP (per expert in the MoE layer).
    CHECK(shared == 2 + (moe ? o.num_experts : 1));
  }
}
