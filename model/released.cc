#include "model/released.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/tiny_model.h"

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
    TinyModelOptions o;  // the same config builder as make-tiny-model's
    o.moe = s.experts > 0;
    o.dtype = "bf16";
    o.hidden_size = s.hidden;
    o.intermediate_size = s.intermediate;
    o.num_layers = s.layers;
    o.num_heads = s.heads;
    o.num_kv_heads = s.kv_heads;
    o.head_dim = 128;
    o.tie_word_embeddings = s.tied;
    if (o.moe) {
      o.num_experts = s.experts;
      o.num_experts_per_tok = s.active;
      o.moe_intermediate_size = s.moe_intermediate;
    }
    Qwen3Config c = TinyConfig(o, 151936);
    c.max_position_embeddings = 40960;
    return c;
  }
  return absl::NotFoundError(absl::StrCat("no released Qwen3 model \"", name, "\" (known: ",
                                          absl::StrJoin(ReleasedQwen3Names(), ", "), ")"));
}

}  // namespace bitsweep::model
