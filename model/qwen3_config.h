// Qwen3 model configuration, parsed from a Hugging Face `config.json`.
//
// Supports model_type "qwen3" (dense) and "qwen3_moe" (sparse MoE MLPs). Keys that define the
// architecture are required; missing ones are an InvalidArgument naming the key and the file.
// Features bitsweep does not implement (attention bias, sliding-window attention, RoPE scaling,
// activations other than SiLU) are rejected rather than silently ignored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace bitsweep::model {

struct Qwen3Config {
  std::string model_type;          // "qwen3" or "qwen3_moe"
  std::vector<std::string> architectures;  // e.g. {"Qwen3ForCausalLM"}
  int64_t vocab_size = 0;          // embedding rows (151936 for released Qwen3)
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;   // dense MLP width
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA: divides num_attention_heads
  int64_t head_dim = 0;             // 128 for every released Qwen3
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  bool tie_word_embeddings = false;  // lm_head shares embed_tokens (0.6B, 1.7B, 4B)
  std::string hidden_act = "silu";
  std::string torch_dtype = "bfloat16";  // the stored dtype, informational
  int64_t bos_token_id = -1;        // -1 when absent or null
  int64_t eos_token_id = -1;        // first id when config.json gives a list

  // qwen3_moe only.
  int64_t num_experts = 0;
  int64_t num_experts_per_tok = 0;
  int64_t moe_intermediate_size = 0;
  int64_t decoder_sparse_step = 1;
  bool norm_topk_prob = false;
  std::vector<int64_t> mlp_only_layers;  // layers that keep a dense MLP
  double router_aux_loss_coef = 0.0;     // training only; kept for round trips

  bool is_moe() const { return model_type == "qwen3_moe"; }
  // Whether layer `i` has a sparse MoE block (HF's Qwen3MoeDecoderLayer rule).
  bool IsMoeLayer(int64_t i) const;
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  // Checks internal consistency (positive sizes, heads divisible, top-k <= experts, ...).
  Status Validate() const;
  // Serialises back to config.json text (the keys HF writes for this architecture).
  std::string ToJson() const;
};

// `source` names the text's origin in error messages (usually the file path).
StatusOr<Qwen3Config> ParseQwen3Config(const std::string& json_text, const std::string& source);
// Reads `<model_dir>/config.json`.
StatusOr<Qwen3Config> LoadQwen3Config(const std::string& model_dir);

}  // namespace bitsweep::model
