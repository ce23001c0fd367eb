// Quantizes a loaded Qwen3 model in place, layer by layer (docs/methods.md#layer-wise-driver), and
// returns the integer form of every quantized linear with per-linear reconstruction losses.
//
// The method is a Quantizer (quant/method.h) built from its catalog row; this driver knows no
// method by name. Methods: RTN (no calibration); GPTQ and BiLLM (sequential calibration: each
// decoder layer's inputs are captured, each group of linears gets its Hessian from a forward of
// the partly quantized layer, and the quantized layer's outputs feed the next layer); AWQ and
// SmoothQuant (FP-propagated: each layer's calibration inputs come from the FP model). The
// per-layer contract is in quant/layer_job.h. Only decoder-block linears are quantized; embeddings,
// norms, lm_head and the MoE router stay in full precision (AWQ/SmoothQuant rescale norms and
// the router's input columns, which leaves the FP function unchanged).
// Memory: one set of calibration activations [nsamples, seqlen, hidden] plus the model, or plus
// one decoder layer with a lazy model and a layer sink (see QuantizeOptions::layer_sink).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "quant/calibration_data.h"
#include "quant/grid.h"
#include "quant/layer_job.h"
#include "quant/method.h"

namespace bitsweep::model {
class Qwen3Model;
struct Qwen3Config;
}

namespace bitsweep::quant {

struct QuantizeOptions {
  // The method with its typed options (MakeQuantizer); required.
  std::shared_ptr<const Quantizer> method;
  // MoE experts routed fewer calibration tokens than this use the method's fallback (reported).
  int64_t min_expert_tokens = 16;
  std::function<void(int64_t layer, int64_t layers)> progress;
  // Streaming: called after layer i is quantized (still in memory) with that layer's integer
  // weights, which then leave the result; a lazy model (LoadOptions::lazy_layers) then releases
  // the layer. With a sink, memory stays at about one decoder layer plus the calibration
  // activations whatever the depth. Without one, every QuantizedWeight stays in the result.
  std::function<Status(int64_t layer, std::map<std::string, QuantizedWeight>& weights)>
      layer_sink;
};

// InvalidArgument naming the parameter (or the first linear whose in_features the group size
// does not divide) for options that cannot run on a model of this config. Needs no weights, so
// callers check before loading calibration data; QuantizeModel checks again.
Status ValidateQuantizeOptions(const model::Qwen3Config& config, const QuantizeOptions& options);

// REQUIRES: calib non-null for calibrated methods.
StatusOr<QuantizeResult> QuantizeModel(model::Qwen3Model& model, const CalibrationSet* calib,
                                       const QuantizeOptions& options);

}  // namespace bitsweep::quant
