// AWQ (Lin et al. 2023; mit-han-lab/llm-awq), docs/methods.md#awq: activation-aware per-channel
// scale search on the FP layer's cached inputs, clip search, then the min-max (kMinMax) grid.
//
// Per decoder layer (AwqQuantizeLayer): one FP forward caches every linear's input and the FP
// layer outputs (the next layer's inputs: AWQ propagates FP activations); every
// model::ScalingGroups group is searched on the ORIGINAL weights and features; then all chosen
// scales are applied (AwqApplyScale), the clip bounds are searched on the scaled weights and
// features (AwqSearchClip) and applied, and every linear is quantized with kMinMax RTN.
//
// What each LinearReport holds:
//   loss   mean((org_out - out)^2) of the group's matched module (whole self_attn, whole MLP /
//          MoE block, or the linear itself) at the chosen ratio, with weights Q(W*s)/s and no
//          clipping: the search's own objective. Linears whose group is not searched (v->o when
//          skipped, experts with too few routed tokens) report that loss with s = 1 on the
//          linear itself (0 when no token reached it).
//   stats  "ratio" (chosen ratio; searched groups only), "ratio0_loss" (the loss at ratio 0,
//          i.e. s = 1; searched groups only), "clip_shrink_mean" (mean chosen shrink
//          i_s/n_grid over (row, group); clipped linears only).
//   note   why a search or the clip was skipped, when it was.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <optional>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"
#include "quant/method.h"

namespace bitsweep::model {
class Collective;
struct ScalingGroup;
}  // namespace bitsweep::model

namespace bitsweep::quant {

struct AwqOptions {
  int n_grid = 20;            // ratios 0, 1/n_grid, ..., (n_grid-1)/n_grid
  bool duo_scaling = false;   // AutoAWQ's x^r / w^(1-r) form instead of llm-awq's x^r
  bool clip = true;           // run the clip search (auto_clip)
  double max_shrink = 0.5;    // clip search: shrink steps 0 .. max_shrink*n_grid - 1
  int64_t clip_tokens = 512;  // clip search: tokens subsampled (n_sample_token)
  // v_proj -> o_proj scaling under GQA with the scale shared by the query heads of each kv
  // group (faithful default). false reproduces llm-awq/Q3Q: skipped unless v.shape == o.shape.
  bool scale_v_to_o = true;
};

// Quantizes every linear of job's layer with AWQ on the grid (its kind is forced to kMinMax);
// replaces *job.xs with the FP layer's outputs. InvalidArgument for bad options, a grid that
// does not fit a linear, or missing/mismatched calibration inputs.
Status AwqQuantizeLayer(LayerJob& job, const QuantGrid& grid, const AwqOptions& options,
                        QuantizeResult* out);
// Mixed precision: each linear on its own grid, `grid_of(relative name)`; nullopt keeps the
// linear in FP (its input is still scaled, the function unchanged; the scale search leaves it
// unquantized, and a group with no quantized linear is not searched). With the same grid for
// every linear this is the overload above, number for number.
using LinearGridOf = std::function<std::optional<QuantGrid>(const std::string& relative)>;
Status AwqQuantizeLayer(LayerJob& job, const LinearGridOf& grid_of, const AwqOptions& options,
                        QuantizeResult* out);

// The equivalent transformation of one scaling group (llm-awq apply_scale): `s` [n] > 0 is
// divided out of `group.prev` (a norm weight [n], or the last n output rows of a linear) and
// multiplied into the input columns of `group.linears` and `group.also_scaled` (each column j
// takes s[(j / (repeat_groups*head_dim))*head_dim + j % head_dim] when repeat_groups > 1, else
// s[j]). The FP function of the layer is unchanged up to rounding.
Status AwqApplyScale(model::DecoderLayer& layer, const model::ScalingGroup& group,
                     const at::Tensor& s);

// Clip search of one linear (llm-awq auto_clip_layer). w: [out, in]; x: [tokens, in] (the
// linear's input, already divided by its scale). Tokens are subsampled with stride
// max(1, tokens / clip_tokens); per (row, group) the bound org_max*(1 - i_s/n_grid),
// i_s = 0 .. int(max_shrink*n_grid)-1, minimising mean_t(sum_gs(X*Q(clamp W)) - sum_gs(X*W))^2
// is kept (first minimum; i_s = 0 leaves W unclipped).
struct AwqClip {
  at::Tensor max_val;  // [out, n_groups] fp32: the chosen bound
  at::Tensor steps;    // [out, n_groups] int64: the chosen i_s
};
// `split`: the ranks that each hold w and x and share the search (see LayerJob::split); the
// result is the same on every rank.
StatusOr<AwqClip> AwqSearchClip(const at::Tensor& w, const at::Tensor& x, const QuantGrid& grid,
                                const AwqOptions& options,
                                const model::Collective* split = nullptr);

// The "awq" row of common/catalog.cc: AwqQuantizeLayer on the kMinMax grid, each layer quantized
// whole under tensor parallelism (RunOnWholeLayer); released_code skips v->o under GQA.
StatusOr<QuantizerPtr> MakeAwqQuantizer(const MethodInfo& row, const QuantConfig& config);

}  // namespace bitsweep::quant
