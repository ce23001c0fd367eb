// SmoothQuant (Xiao et al. 2023; mit-han-lab/smoothquant), METHODS.md §2.5: per-channel
// activation maxima from FP calibration, smoothing s = a^alpha / w^(1-alpha) folded into the
// preceding RMSNorm, weights per-channel symmetric abs-max (kSymAbsMax) at wbits, and
// activations per-token symmetric abs-max at abits, dynamically, at evaluation time.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"

namespace bitsweep::model {
class Qwen3Model;
}

namespace bitsweep::quant {

struct SmoothQuantOptions {
  double alpha = 0.5;               // migration strength
  bool smooth = true;               // false: the study's released code (no smoothing)
  int abits = 8;                    // activation bits, 2..8 (applied at evaluation)
  bool quantize_qkv_output = false; // also per-token quantise q/k/v outputs (quantize_bmm_input)
};

// Smooths (when options.smooth) and weight-quantizes job's layer; replaces *job.xs with the FP
// layer's outputs. Needs calibration inputs only when smoothing.
Status SmoothQuantLayer(LayerJob& job, int wbits, const SmoothQuantOptions& options,
                        QuantizeResult* out);

// Evaluation side: installs per-token abs-max fake quantisation of every quantized linear's
// input at `abits` (and of the q/k/v outputs when qkv_output) as Linear hooks.
// InvalidArgument when abits is outside 2..8.
Status InstallActivationQuantization(model::Qwen3Model& model, int abits, bool qkv_output);

}  // namespace bitsweep::quant
