#include "model/memory_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/memory.h"

namespace bitsweep::model {
namespace {

int64_t ElementBytes(ComputeDType dtype) { return dtype == ComputeDType::kBFloat16 ? 2 : 4; }

// Tokens whose fp32 logits are scored together (eval/perplexity.cc's chunk); with one
// converted lm_head chunk (kLmHeadChunkRows, lazy_globals) the scoring working set.
constexpr int64_t kScoredTokens = 512;

int64_t LayerParameters(const Qwen3Config& c, int64_t i) {
  const int64_t h = c.hidden_size;
  int64_t n = 2 * h + 2 * c.head_dim;                      // norms
  n += h * c.q_dim() * 2 + h * c.kv_dim() * 2;             // q, o; k, v
  if (c.IsMoeLayer(i)) {
    n += c.num_experts * h;                                // router
    n += c.num_experts * 3 * h * c.moe_intermediate_size;  // experts
  } else {
    n += 3 * h * c.intermediate_size;
  }
  return n;
}

}  // namespace

int64_t LayerBytes(const Qwen3Config& c, int64_t i, ComputeDType dtype, int world) {
  return LayerParameters(c, i) * ElementBytes(dtype) / std::max(1, world);
}

int64_t ModelBytes(const Qwen3Config& c, ComputeDType dtype, int world) {
  int64_t n = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2) + c.hidden_size;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) n += LayerParameters(c, i);
  return n * ElementBytes(dtype) / std::max(1, world);
}

StatusOr<MemoryPlan> PlanModelMemory(const Qwen3Config& c, ComputeDType dtype, int world,
                                     int64_t budget_bytes, const std::string& budget_source,
                                     bool cuda) {
  MemoryPlan plan;
  plan.budget_bytes = budget_bytes;
  plan.resident_bytes = ModelBytes(c, dtype, world);
  int64_t largest = 0;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const int64_t b = LayerBytes(c, i, dtype, world);
    if (b > plan.layer_bytes) {
      plan.layer_bytes = b;
      largest = i;
    }
  }
  const int64_t vocab_share = (c.vocab_size + world - 1) / std::max(1, world);
  plan.scoring_bytes = kScoredTokens * vocab_share * 4 +
                       std::min(vocab_share, kLmHeadChunkRows) * c.hidden_size * 4;
  const std::string budget = absl::StrCat(budget_source, " ", FormatBytes(budget_bytes));
  if (plan.resident_bytes + plan.scoring_bytes <= budget_bytes) {
    plan.streamed = false;
    plan.activation_bytes = budget_bytes - plan.resident_bytes - plan.scoring_bytes;
    plan.reason = absl::StrCat("resident: the whole model (", FormatBytes(plan.resident_bytes),
                               ") and scoring (", FormatBytes(plan.scoring_bytes), ") fit ",
                               budget);
    return plan;
  }
  if (plan.layer_bytes + plan.scoring_bytes > budget_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        budget, " is too small: one decoder layer (layer ", largest, ": ",
        FormatBytes(plan.layer_bytes), " in ", ComputeDTypeName(dtype), ") and scoring (",
        FormatBytes(plan.scoring_bytes), ") need ",
        FormatBytes(plan.layer_bytes + plan.scoring_bytes)));
  }
  plan.streamed = true;
  plan.prefetch = cuda && 2 * plan.layer_bytes + plan.scoring_bytes <= budget_bytes;
  const int64_t layers_held = plan.prefetch ? 2 : 1;
  plan.activation_bytes = budget_bytes - layers_held * plan.layer_bytes - plan.scoring_bytes;
  plan.reason = absl::StrCat("streamed one decoder layer at a time: the whole model (",
                             FormatBytes(plan.resident_bytes), ") does not fit ", budget,
                             "; one layer (", FormatBytes(plan.layer_bytes), ") and scoring (",
                             FormatBytes(plan.scoring_bytes), ") do");
  if (plan.prefetch) {
    absl::StrAppend(&plan.reason, ", with room to copy the next layer while one runs");
  } else if (cuda) {
    absl::StrAppend(&plan.reason, "; two layers do not, so each layer's copy waits for the last");
  }
  return plan;
}

}  // namespace bitsweep::model
