// Mixed precision: what a QuantConfig's overrides (common/job_spec.h) mean for each linear of a
// decoder layer, their canonical form, and the average bits per weight of a recipe.
//
// An override selects linears by layer range and/or linear type and sets their weight bits
// and/or group size; entries apply in order, each setting only the fields it gives, so the last
// matching entry wins per field. wbits 16 keeps a linear in full precision. The canonical form
// (NormalizeQuantConfig) lists, for the resolved precision of every (layer, linear type), the
// linear-type entries that differ from the recipe first, then layer entries, each with both
// bits and group; two recipes that resolve alike get the same list, and a recipe whose overrides
// change nothing gets none (so its artifact key is the uniform recipe's). Which methods accept
// which overrides is the table kMixedPrecisionRules in mixed_precision.cc (docs/methods.md).
// Pure functions; torch-free (the coordinator validates and keys recipes).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/catalog.h"
#include "common/job_spec.h"
#include "common/status.h"

namespace bitsweep {

inline constexpr int kKeepFpBits = 16;
// Largest layer index an override may name (before the model is known).
inline constexpr int64_t kMaxOverrideLayer = 4095;

// The linear types of a Qwen3 decoder layer, in canonical order.
const std::vector<std::string>& LinearTypes();
// "self_attn.q_proj", "model.layers.3.mlp.experts.7.down_proj" -> "q_proj" / "down_proj".
std::string LinearTypeOf(std::string_view linear_name);

// "0-3,7" -> {0, 1, 2, 3, 7} (sorted, unique); InvalidArgument on anything else.
StatusOr<std::vector<int64_t>> ParseLayerRanges(std::string_view text);
// Sorted unique indices -> "0-3,7".
std::string FormatLayerRanges(const std::vector<int64_t>& layers);

struct LinearPrecision {
  int wbits = 16;
  int group_size = -1;
  bool keep_fp() const { return wbits >= kKeepFpBits; }
  bool operator==(const LinearPrecision& o) const {
    return wbits == o.wbits && group_size == o.group_size;
  }
  bool operator!=(const LinearPrecision& o) const { return !(*this == o); }
};

// The precision of linear `linear_name` (any of LinearTypeOf's forms) of decoder layer `layer`.
// REQUIRES: q normalised or at least with valid overrides. A keep-FP linear has group -1.
LinearPrecision ResolveLinearPrecision(const QuantConfig& q, int64_t layer,
                                       std::string_view linear_name);

// Validates q.overrides for q's (already normalised) method, bits and group, and rewrites them in
// canonical form (possibly empty); `field` names fields in errors ("quant.overrides[1].wbits").
// With the model's num_layers (> 0; ExpandSweep knows it) the form is also canonical among
// recipes equal on that model only: the result, normalised again without it, is unchanged.
Status CanonicalizeOverrides(const MethodInfo& row, QuantConfig* q,
                             const std::function<std::string(std::string_view)>& field,
                             int64_t num_layers = -1);

// The canonical text of a normalised list: entries "L0-3:w4", "down_proj:w4g128",
// "L5:q_proj:fp" joined by spaces ("" when empty). Used in artifact keys and labels.
std::string OverridesText(const std::vector<QuantOverride>& overrides);

// One entry in OverridesText's form ("L0-3:w4", "down_proj:w4g64", "L5:q_proj:fp", "g64"), as
// `bitsweep quantize --override` takes it; InvalidArgument saying what does not parse.
StatusOr<QuantOverride> ParseOverrideEntry(std::string_view text);

// InvalidArgument naming quant.overrides[i].layers when an entry names a layer the model lacks.
Status ValidateOverrideLayers(const QuantConfig& q, int64_t num_layers);

// The unit of a sensitivity job (common/sweep.h: one unit quantized, everything else in FP):
// "layer 5" or "q_proj"; "" for any other recipe.
std::string SensitivityUnit(const QuantConfig& q);

// The linears of one decoder layer for AverageBitsPerWeight: name and weight element count.
using LayerLinears = std::vector<std::pair<std::string, int64_t>>;
// Weight bits averaged over the decoder layers' quantized linears, each weighted by its element
// count (keep-FP linears count 16). Excludes the group scales and zero points and everything
// outside the decoder linears (embeddings, norms, lm_head), like the papers' "W3" labels.
double AverageBitsPerWeight(const QuantConfig& q, const std::vector<LayerLinears>& layers);

}  // namespace bitsweep
