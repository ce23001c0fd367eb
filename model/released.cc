#include "model/released.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace bitsweep::model {
namespace {

struct Shape {
  const char* name;
  int64_t hidden, intermediate, layers, heads, kv_heads;
  bool tied;
  // MoE: experts, active experts, expert MLP width (0 = dense).
  int64_t experts = 0, active = 0, moe_intermediate = 0;
};

// From each model's config.json (head_dim 128, vocabulary 151,936, rope_theta 1e6 throughout).
const Shape kShapes[] = {
    {"Qwen3-0.6B", 1024, 3072, 28, 16, 8, true},
    {"Qwen3-1.7B", 2048, 6144, 28, 16, 8, true},
    {"Qwen3-4B", 2560, 9728, 36, 32, 8, true},
    {"Qwen3-8B", 4096, 12288, 36, 32, 8, false},
    {"Qwen3-14B", 5120, 17408, 40, 40, 8, false},
    {"Qwen3-32B", 5120, 25600, 64, 64, 8, false},
    {"Qwen3-30B-A3B", 2048, 6144, 48, 32, 4, false, 128, 8, 768},
};

}  // namespace

std::vector<std::string> ReleasedQwen3Names() {
  std::vector<std::string> names;
  for (const Shape& s : kShapes) names.push_back(s.name);
  return names;
}

StatusOr<Qwen3Config> ReleasedQwen3Config(const std::string& name) {
  for (const Shape& s : kShapes) {
    if (name != s.name) continue;
    Qwen3Config c;
    c.model_type = s.experts > 0 ? "qwen3_moe" : "qwen3";
    c.architectures = {s.experts > 0 ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"};
    c.vocab_size = 151936;
    c.hidden_size = s.hidden;
    c.intermediate_size = s.intermediate;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = 128;
    c.max_position_embeddings = 40960;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1e6;
    c.tie_word_embeddings = s.tied;
    c.torch_dtype = "bfloat16";
    if (s.experts > 0) {
      c.num_experts = s.experts;
      c.num_experts_per_tok = s.active;
      c.moe_intermediate_size = s.moe_intermediate;
      c.decoder_sparse_step = 1;
      c.norm_topk_prob = true;
    }
    return c;
  }
  return absl::NotFoundError(absl::StrCat("no released Qwen3 model \"", name, "\" (known: ",
                                          absl::StrJoin(ReleasedQwen3Names(), ", "), ")"));
}

}  // namespace bitsweep::model
