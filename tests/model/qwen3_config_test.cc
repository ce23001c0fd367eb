#include "model/qwen3_config.h"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "tests/testing/paths.h"

namespace {

using bitsweep::model::ParseQwen3Config;
using Catch::Matchers::Contains;
using json = nlohmann::json;

// Qwen3-0.6B's config.json (model/released.h).
json Qwen3_0_6B() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
    "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

json Qwen3_30B_A3B() {
  json j = Qwen3_0_6B();
  j["model_type"] = "qwen3_moe";
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["hidden_size"] = 2048;
  j["intermediate_size"] = 6144;
  j["num_hidden_layers"] = 48;
  j["num_attention_heads"] = 32;
  j["num_key_value_heads"] = 4;
  j["tie_word_embeddings"] = false;
  j["num_experts"] = 128;
  j["num_experts_per_tok"] = 8;
  j["moe_intermediate_size"] = 768;
  j["norm_topk_prob"] = true;
  j["decoder_sparse_step"] = 1;
  j["mlp_only_layers"] = json::array();
  j["router_aux_loss_coef"] = 0.001;
  return j;
}

std::string ErrorOf(const json& j) {
  auto c = ParseQwen3Config(j.dump(), "cfg.json");
  REQUIRE_FALSE(c.ok());
  return std::string(c.status().message());
}

}  // namespace

TEST_CASE("Qwen3-0.6B config.json parses into every architecture field", "[config]") {
  auto c = ParseQwen3Config(Qwen3_0_6B().dump(), "cfg.json");
  REQUIRE(c.ok());
  CHECK(c->vocab_size == 151936);
  CHECK(c->hidden_size == 1024);
  CHECK(c->intermediate_size == 3072);
  CHECK(c->num_hidden_layers == 28);
  CHECK(c->num_attention_heads == 16);
  CHECK(c->num_key_value_heads == 8);
  CHECK(c->head_dim == 128);
  CHECK(c->q_dim() == 2048);
  CHECK(c->max_position_embeddings == 40960);
  CHECK(c->rms_norm_eps == 1e-6);
  CHECK(c->rope_theta == 1e6);
  CHECK(c->tie_word_embeddings);
  CHECK(c->eos_token_id == 151645);
  CHECK_FALSE(c->is_moe());
  CHECK_FALSE(c->IsMoeLayer(0));
}

TEST_CASE("Qwen3-30B-A3B config.json parses the MoE fields", "[config]") {
  auto c = ParseQwen3Config(Qwen3_30B_A3B().dump(), "cfg.json");
  REQUIRE(c.ok());
  CHECK(c->is_moe());
  CHECK(c->num_experts == 128);
  CHECK(c->num_experts_per_tok == 8);
  CHECK(c->moe_intermediate_size == 768);
  CHECK(c->norm_topk_prob);
  CHECK(c->IsMoeLayer(0));
  CHECK(c->IsMoeLayer(47));
}

TEST_CASE("mlp_only_layers and decoder_sparse_step select dense layers as HF does", "[config]") {
  json j = Qwen3_30B_A3B();
  j["mlp_only_layers"] = {0};
  j["decoder_sparse_step"] = 2;
  auto c = ParseQwen3Config(j.dump(), "cfg.json");
  REQUIRE(c.ok());
  CHECK_FALSE(c->IsMoeLayer(0));
  CHECK(c->IsMoeLayer(1));
  CHECK_FALSE(c->IsMoeLayer(2));
  CHECK(c->IsMoeLayer(3));
}

TEST_CASE("A config round-trips through ToJson", "[config]") {
  for (const json& j : {Qwen3_0_6B(), Qwen3_30B_A3B()}) {
    auto c = ParseQwen3Config(j.dump(), "cfg.json");
    REQUIRE(c.ok());
    auto again = ParseQwen3Config(c->ToJson(), "again.json");
    REQUIRE(again.ok());
    CHECK(again->ToJson() == c->ToJson());
  }
}

TEST_CASE("Each missing required key is named in the error", "[config]") {
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim",
                          "rms_norm_eps", "rope_theta", "tie_word_embeddings", "model_type",
                          "max_position_embeddings"}) {
    json j = Qwen3_0_6B();
    j.erase(key);
    const std::string msg = ErrorOf(j);
    CHECK_THAT(msg, Contains(key) && Contains("missing") && Contains("cfg.json"));
  }
  for (const char* key : {"num_experts", "num_experts_per_tok", "moe_intermediate_size",
                          "norm_topk_prob"}) {
    json j = Qwen3_30B_A3B();
    j.erase(key);
    CHECK_THAT(ErrorOf(j), Contains(key) && Contains("missing"));
  }
}

TEST_CASE("Unsupported architectures and features are rejected by name", "[config]") {
  json j = Qwen3_0_6B();
  j["model_type"] = "llama";
  CHECK_THAT(ErrorOf(j), Contains("unsupported model_type") && Contains("llama"));
  j = Qwen3_0_6B();
  j["attention_bias"] = true;
  CHECK_THAT(ErrorOf(j), Contains("attention_bias"));
  j = Qwen3_0_6B();
  j["use_sliding_window"] = true;
  CHECK_THAT(ErrorOf(j), Contains("use_sliding_window"));
  j = Qwen3_0_6B();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  CHECK_THAT(ErrorOf(j), Contains("rope_scaling"));
  j = Qwen3_0_6B();
  j["hidden_act"] = "gelu";
  CHECK_THAT(ErrorOf(j), Contains("hidden_act"));
}

TEST_CASE("Wrong types and inconsistent sizes are rejected with the key named", "[config]") {
  json j = Qwen3_0_6B();
  j["hidden_size"] = "1024";
  CHECK_THAT(ErrorOf(j), Contains("hidden_size") && Contains("integer"));
  j = Qwen3_0_6B();
  j["num_key_value_heads"] = 3;
  CHECK_THAT(ErrorOf(j), Contains("num_key_value_heads"));
  j = Qwen3_0_6B();
  j["num_hidden_layers"] = 0;
  CHECK_THAT(ErrorOf(j), Contains("num_hidden_layers") && Contains("positive"));
  j = Qwen3_30B_A3B();
  j["num_experts_per_tok"] = 200;
  CHECK_THAT(ErrorOf(j), Contains("num_experts_per_tok"));
  auto bad = ParseQwen3Config("{not json", "broken.json");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("broken.json") && Contains("JSON"));
}

TEST_CASE("A missing config.json is an error naming the path", "[config]") {
  const std::string dir = bitsweep::testing::ScratchDir("config_missing");
  auto c = bitsweep::model::LoadQwen3Config(dir);
  REQUIRE_FALSE(c.ok());
  CHECK_THAT(std::string(c.status().message()), Contains(dir + "/config.json"));
}
