#include "model/qwen3_config.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace {

using json = nlohmann::json;

Status KeyError(const std::string& source, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": config key \"", key, "\" ", what));
}

Status GetInt(const json& j, const std::string& source, const char* key, bool required,
              int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(source, key, "is missing") : absl::OkStatus();
  }
  if (!it->is_number_integer()) return KeyError(source, key, "must be an integer");
  *out = it->get<int64_t>();
  return absl::OkStatus();
}

Status GetDouble(const json& j, const std::string& source, const char* key, bool required,
                 double* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(source, key, "is missing") : absl::OkStatus();
  }
  if (!it->is_number()) return KeyError(source, key, "must be a number");
  *out = it->get<double>();
  return absl::OkStatus();
}

Status GetBool(const json& j, const std::string& source, const char* key, bool required,
               bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(source, key, "is missing") : absl::OkStatus();
  }
  if (!it->is_boolean()) return KeyError(source, key, "must be true or false");
  *out = it->get<bool>();
  return absl::OkStatus();
}

Status GetString(const json& j, const std::string& source, const char* key, bool required,
                 std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    return required ? KeyError(source, key, "is missing") : absl::OkStatus();
  }
  if (!it->is_string()) return KeyError(source, key, "must be a string");
  *out = it->get<std::string>();
  return absl::OkStatus();
}

// eos_token_id / bos_token_id may be an integer, a list of integers, or null.
Status GetTokenId(const json& j, const std::string& source, const char* key, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return absl::OkStatus();
  if (it->is_number_integer()) {
    *out = it->get<int64_t>();
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number_integer()) {
    *out = (*it)[0].get<int64_t>();
  } else {
    return KeyError(source, key, "must be an integer or a list of integers");
  }
  return absl::OkStatus();
}

StatusOr<Qwen3Config> ParseImpl(const json& j, const std::string& source) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": config must be a JSON object"));
  }
  Qwen3Config c;
  RETURN_IF_ERROR(GetString(j, source, "model_type", true, &c.model_type));
  if (c.model_type != "qwen3" && c.model_type != "qwen3_moe") {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": unsupported model_type \"", c.model_type,
                     "\" (bitsweep supports \"qwen3\" and \"qwen3_moe\")"));
  }
  if (auto it = j.find("architectures"); it != j.end() && it->is_array()) {
    for (const auto& a : *it) {
      if (a.is_string()) c.architectures.push_back(a.get<std::string>());
    }
  }
  RETURN_IF_ERROR(GetInt(j, source, "vocab_size", true, &c.vocab_size));
  RETURN_IF_ERROR(GetInt(j, source, "hidden_size", true, &c.hidden_size));
  RETURN_IF_ERROR(GetInt(j, source, "intermediate_size", true, &c.intermediate_size));
  RETURN_IF_ERROR(GetInt(j, source, "num_hidden_layers", true, &c.num_hidden_layers));
  RETURN_IF_ERROR(GetInt(j, source, "num_attention_heads", true, &c.num_attention_heads));
  RETURN_IF_ERROR(GetInt(j, source, "num_key_value_heads", true, &c.num_key_value_heads));
  RETURN_IF_ERROR(GetInt(j, source, "head_dim", true, &c.head_dim));
  RETURN_IF_ERROR(
      GetInt(j, source, "max_position_embeddings", true, &c.max_position_embeddings));
  RETURN_IF_ERROR(GetDouble(j, source, "rms_norm_eps", true, &c.rms_norm_eps));
  RETURN_IF_ERROR(GetDouble(j, source, "rope_theta", true, &c.rope_theta));
  RETURN_IF_ERROR(GetBool(j, source, "tie_word_embeddings", true, &c.tie_word_embeddings));
  RETURN_IF_ERROR(GetString(j, source, "hidden_act", false, &c.hidden_act));
  RETURN_IF_ERROR(GetString(j, source, "torch_dtype", false, &c.torch_dtype));
  RETURN_IF_ERROR(GetTokenId(j, source, "bos_token_id", &c.bos_token_id));
  RETURN_IF_ERROR(GetTokenId(j, source, "eos_token_id", &c.eos_token_id));

  bool attention_bias = false;
  RETURN_IF_ERROR(GetBool(j, source, "attention_bias", false, &attention_bias));
  if (attention_bias) return KeyError(source, "attention_bias", "= true is not supported");
  bool sliding = false;
  RETURN_IF_ERROR(GetBool(j, source, "use_sliding_window", false, &sliding));
  if (sliding) return KeyError(source, "use_sliding_window", "= true is not supported");
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    return KeyError(source, "rope_scaling", "is not supported (only null)");
  }
  if (c.hidden_act != "silu") {
    return KeyError(source, "hidden_act", "must be \"silu\" (got \"" + c.hidden_act + "\")");
  }

  if (c.is_moe()) {
    RETURN_IF_ERROR(GetInt(j, source, "num_experts", true, &c.num_experts));
    RETURN_IF_ERROR(GetInt(j, source, "num_experts_per_tok", true, &c.num_experts_per_tok));
    RETURN_IF_ERROR(GetInt(j, source, "moe_intermediate_size", true, &c.moe_intermediate_size));
    RETURN_IF_ERROR(GetBool(j, source, "norm_topk_prob", true, &c.norm_topk_prob));
    RETURN_IF_ERROR(GetInt(j, source, "decoder_sparse_step", false, &c.decoder_sparse_step));
    RETURN_IF_ERROR(
        GetDouble(j, source, "router_aux_loss_coef", false, &c.router_aux_loss_coef));
    if (auto it = j.find("mlp_only_layers"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) return KeyError(source, "mlp_only_layers", "must be a list");
      for (const auto& v : *it) {
        if (!v.is_number_integer()) {
          return KeyError(source, "mlp_only_layers", "must hold integers");
        }
        c.mlp_only_layers.push_back(v.get<int64_t>());
      }
    }
  }
  Status s = c.Validate();
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  return c;
}

}  // namespace

bool Qwen3Config::IsMoeLayer(int64_t i) const {
  if (!is_moe() || num_experts <= 0) return false;
  for (int64_t l : mlp_only_layers) {
    if (l == i) return false;
  }
  return (i + 1) % decoder_sparse_step == 0;
}

Status Qwen3Config::Validate() const {
  auto positive = [](const char* key, int64_t v) -> Status {
    if (v > 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be positive (got ", v, ")"));
  };
  RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  RETURN_IF_ERROR(positive("num_key_value_heads", num_key_value_heads));
  RETURN_IF_ERROR(positive("head_dim", head_dim));
  RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"head_dim\" must be even for RoPE (got ",
                                                   head_dim, ")"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"num_attention_heads\" (", num_attention_heads,
        ") must be a multiple of \"num_key_value_heads\" (", num_key_value_heads, ")"));
  }
  if (!(rms_norm_eps > 0)) return absl::InvalidArgumentError("\"rms_norm_eps\" must be positive");
  if (!(rope_theta > 0)) return absl::InvalidArgumentError("\"rope_theta\" must be positive");
  if (is_moe()) {
    RETURN_IF_ERROR(positive("num_experts", num_experts));
    RETURN_IF_ERROR(positive("num_experts_per_tok", num_experts_per_tok));
    RETURN_IF_ERROR(positive("moe_intermediate_size", moe_intermediate_size));
    RETURN_IF_ERROR(positive("decoder_sparse_step", decoder_sparse_step));
    if (num_experts_per_tok > num_experts) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"num_experts_per_tok\" (", num_experts_per_tok,
                       ") exceeds \"num_experts\" (", num_experts, ")"));
    }
  }
  return absl::OkStatus();
}

std::string Qwen3Config::ToJson() const {
  json j;
  j["architectures"] = architectures.empty()
                           ? std::vector<std::string>{is_moe() ? "Qwen3MoeForCausalLM"
                                                               : "Qwen3ForCausalLM"}
                           : architectures;
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = nullptr;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = hidden_act;
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["use_sliding_window"] = false;
  j["sliding_window"] = nullptr;
  j["max_window_layers"] = num_hidden_layers;
  j["torch_dtype"] = torch_dtype;
  j["bos_token_id"] = bos_token_id >= 0 ? json(bos_token_id) : json(nullptr);
  j["eos_token_id"] = eos_token_id >= 0 ? json(eos_token_id) : json(nullptr);
  if (is_moe()) {
    j["num_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["norm_topk_prob"] = norm_topk_prob;
    j["mlp_only_layers"] = mlp_only_layers;
    j["router_aux_loss_coef"] = router_aux_loss_coef;
    j["output_router_logits"] = false;
  }
  return j.dump(2) + "\n";
}

StatusOr<Qwen3Config> ParseQwen3Config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": invalid JSON: ", e.what()));
  }
  return ParseImpl(j, source);
}

StatusOr<Qwen3Config> LoadQwen3Config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open config.json: ", model_dir,
                     " is not a Hugging Face model folder (one holds config.json, the weights as "
                     "*.safetensors and tokenizer.json)"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseQwen3Config(ss.str(), path);
}

}  // namespace bitsweep::model
