// SmoothQuant (Xiao et al. 2023; mit-han-lab/smoothquant), docs/methods.md#smoothquant: per-channel
// activation maxima from FP calibration, smoothing s = a^alpha / w^(1-alpha) folded into the
// preceding RMSNorm, weights per-channel symmetric abs-max (kSymAbsMax) at wbits, and
// activations per-token symmetric abs-max at abits, dynamically, at evaluation time.
//
// The study's released code (docs/methods.md#released-code) runs no calibration and no smoothing:
// SmoothQuantOptions::smooth = false gives exactly that (W per-channel abs-max + dynamic A
// per-token abs-max). Vectors: act_max and s are [in_features] fp32; weights [out, in].
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/arch.h"
#include "quant/grid.h"
#include "quant/layer_job.h"
#include "quant/method.h"

namespace bitsweep::model {
class Qwen3Model;
struct DecoderLayer;
}  // namespace bitsweep::model

namespace bitsweep::quant {

struct SmoothQuantOptions {
  double alpha = 0.5;                // migration strength, 0..1
  bool smooth = true;                // false: the study's released code (no smoothing)
  int abits = 8;                     // activation bits, 2..8 (applied at evaluation)
  bool quantize_qkv_output = false;  // also per-token quantise q/k/v outputs (quantize_bmm_input)
};

// Smooths (when options.smooth) and weight-quantizes job's layer; replaces *job.xs with the FP
// layer's outputs (left empty when empty). Needs calibration inputs only when smoothing.
// Every quantized linear gets a LinearReport (loss = ||W_smoothed - W_hat||^2; stats "alpha",
// "smoothed" 0/1; calib_tokens = tokens behind its act_max, -1 when not smoothed) and its
// QuantizedWeight. The caller holds an InferenceMode guard (the driver does).
Status SmoothQuantLayer(LayerJob& job, int wbits, const SmoothQuantOptions& options,
                        QuantizeResult* out);
// Mixed precision: each weight on its own bits, wbits_of(relative linear name).
Status SmoothQuantLayer(LayerJob& job, const std::function<int(const std::string&)>& wbits_of,
                        const SmoothQuantOptions& options, QuantizeResult* out);

// smooth.py's scales: s_j = clamp(act_max_j^alpha / clamp(w_max_j, 1e-5)^(1-alpha), 1e-5).
// act_max, w_max: [in] (any float dtype); returns [in] fp32. REQUIRES: same shapes.
at::Tensor SmoothingScales(const at::Tensor& act_max, const at::Tensor& w_max, double alpha);

// The smoothing step alone (smooth_ln_fcs_llama_like per group): for every group of `groups`
// whose prev_kind is kNorm, w_max is the column-wise max |W| over its linears AND also_scaled
// (upstream smooth_lm puts Mixtral's router into the same fcs list), s = SmoothingScales(
// act_max.at(group.input_of), w_max, alpha), the norm weight is divided by s and the columns of
// every linear and also_scaled linear are multiplied by s (in fp32, cast back to the weight
// dtype). Other groups are ignored (upstream does not smooth o_proj / down_proj). The FP
// function is unchanged up to rounding. `applied` (optional) receives s by group.prev.
// InvalidArgument naming "alpha" (outside 0..1) or "act_max" (missing, wrong size, negative or
// non-finite entries); NotFound for a linear or norm the layer lacks.
Status SmoothLayer(model::DecoderLayer& layer, const std::vector<model::ScalingGroup>& groups,
                   const std::map<std::string, at::Tensor>& act_max, double alpha,
                   std::map<std::string, at::Tensor>* applied = nullptr);

// Evaluation side: installs per-token abs-max fake quantisation (FakeQuantizePerToken) of every
// quantized linear's input at `abits` (model::QuantizedLinears of each layer; not the router,
// not lm_head) and, when qkv_output, of the q/k/v outputs, as Linear hooks (replacing any hooks
// there; without qkv_output the q/k/v output hooks are removed), as fake_quant.py
// W8A8Linear.forward does: y = out_q(act_q(x) W^T).
// InvalidArgument naming "abits" when abits is outside 2..8.
Status InstallActivationQuantization(model::Qwen3Model& model, int abits, bool qkv_output);

// The "smoothquant" row of common/catalog.cc: SmoothQuantLayer with weights symmetric abs-max
// per channel at wbits; abits and qkv_output are recorded for evaluation; released_code does
// no smoothing (and uses no calibration data).
StatusOr<QuantizerPtr> MakeSmoothQuantQuantizer(const MethodInfo& row, const QuantConfig& config);

}  // namespace bitsweep::quant
