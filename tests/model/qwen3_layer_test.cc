// model/qwen3_layer.h: a dense layer's forward cut at the inputs of its linear groups.
#include "model/qwen3_layer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <map>
#include <vector>

#include "model/qwen3.h"
#include "model/tiny_model.h"

namespace {

using bitsweep::model::DenseLayerStages;
using bitsweep::model::Qwen3Model;

std::unique_ptr<Qwen3Model> TinyDense(uint64_t seed) {
  bitsweep::model::TinyModelOptions o;
  o.seed = seed;
  const auto config = bitsweep::model::TinyConfig(o, 256);
  auto m = Qwen3Model::FromTensors(config, bitsweep::model::RandomQwen3Weights(config, seed));
  REQUIRE(m.ok());
  return std::move(m).value();
}

}  // namespace

TEST_CASE("A dense layer's stages give RunLayer's output bit for bit, and each stage's input is "
          "what its linears' input hooks see in a forward",
          "[qwen3]") {
  c10::InferenceMode guard;
  auto m = TinyDense(3);
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 40, m->config().hidden_size});
  const auto rope = m->MakeRope(40);
  auto& layer = m->layer(1);

  // What each linear's input hook sees in RunLayer.
  std::map<std::string, at::Tensor> seen;
  for (auto& [name, lin] : layer.Linears()) {
    const std::string n = name;
    lin->SetInputHook([&seen, n](const at::Tensor& in) {
      seen[n] = in.clone();
      return in;
    });
  }
  const at::Tensor expected = m->RunLayer(1, x, rope);
  for (auto& [name, lin] : layer.Linears()) lin->SetInputHook(nullptr);

  DenseLayerStages stages(layer, m->config(), rope, x);
  const std::vector<std::vector<std::string>> readers = {
      {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
      {"self_attn.o_proj"},
      {"mlp.gate_proj", "mlp.up_proj"},
      {"mlp.down_proj"}};
  for (const auto& group : readers) {
    const at::Tensor& input = stages.Next();
    for (const std::string& name : group) {
      INFO(name);
      CHECK(at::equal(input, seen.at(name)));
    }
  }
  CHECK(at::equal(stages.Output(), expected));
}

TEST_CASE("A dense layer's stages run each group's linears as they are when the stage runs",
          "[qwen3]") {
  c10::InferenceMode guard;
  auto m = TinyDense(4);
  at::manual_seed(6);
  const at::Tensor x = at::randn({1, 24, m->config().hidden_size});
  const auto rope = m->MakeRope(24);
  auto& layer = m->layer(0);
  DenseLayerStages stages(layer, m->config(), rope, x);
  // Changing each group's weights right after its input was taken: the output is the forward
  // of the fully changed layer.
  std::vector<std::vector<bitsweep::model::Linear*>> groups = {
      {&layer.q_proj, &layer.k_proj, &layer.v_proj},
      {&layer.o_proj},
      {&layer.mlp->gate_proj, &layer.mlp->up_proj},
      {&layer.mlp->down_proj}};
  for (auto& group : groups) {
    (void)stages.Next();
    for (auto* lin : group) lin->SetWeight(lin->weight() * 0.5 + 0.01);
  }
  CHECK(at::equal(stages.Output(), m->RunLayer(0, x, rope)));
}

TEST_CASE("DenseLayerStages refuses an MoE layer and calls out of order", "[qwen3]") {
  c10::InferenceMode guard;
  bitsweep::model::TinyModelOptions o;
  o.moe = true;
  const auto config = bitsweep::model::TinyConfig(o, 256);
  auto moe = Qwen3Model::FromTensors(config, bitsweep::model::RandomQwen3Weights(config, 1));
  REQUIRE(moe.ok());
  const auto rope = (*moe)->MakeRope(8);
  const at::Tensor x = at::zeros({1, 8, config.hidden_size});
  CHECK_THROWS_WITH(DenseLayerStages((*moe)->layer(0), config, rope, x),
                    Catch::Matchers::Contains("not dense"));
  auto dense = TinyDense(2);
  DenseLayerStages stages(dense->layer(0), dense->config(), rope, x);
  CHECK_THROWS_WITH(stages.Output(), Catch::Matchers::Contains("before the last group"));
}
