// What the layer-wise driver (quantize_model.cc, docs/methods.md#layer-wise-driver) hands each
// method for one decoder layer, and what the methods report back. Per-layer method entry points
// (GPTQ, AWQ, SmoothQuant, BiLLM) share this contract:
//   * job.model->layer(job.index) is loaded and may be modified in place (weights replaced by
//     their dequantised values, norms rescaled);
//   * *job.xs are this layer's calibration inputs ([1, T, hidden] each, compute dtype); on
//     return they must hold the NEXT layer's inputs: the quantized layer's outputs for
//     GPTQ/BiLLM (sequential), the FP layer's outputs for AWQ and SmoothQuant (FP-propagated);
//   * every quantized linear gets one LinearReport (full HF name) and, for integer-grid methods,
//     its QuantizedWeight in out->weights.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "quant/grid.h"

namespace bitsweep::model {
class Collective;
class Qwen3Model;
class Linear;
struct DecoderLayer;
struct RopeTables;
}  // namespace bitsweep::model

namespace bitsweep::quant {

struct LinearReport {
  std::string name;          // full HF module name
  double loss = 0;           // GPTQ/BiLLM: the error sum; RTN/SQ: squared weight error;
                             // AWQ: its group's best scale-search loss (quant/awq.h)
  int64_t calib_tokens = 0;  // tokens that reached this linear (-1: no calibration)
  std::string note;          // e.g. "fallback to RTN: 3 calibration tokens"
  // Method-specific numbers (AWQ's chosen ratio, BiLLM's salient fraction and storage bits...).
  std::map<std::string, double> stats;
};

struct QuantizeResult {
  std::vector<LinearReport> linears;
  std::map<std::string, QuantizedWeight> weights;  // by full HF module name (integer grids)
  // Model-level numbers (BiLLM's effective bits as the study reports them, storage bits...).
  std::map<std::string, double> summary;
  double seconds = 0;
};

struct LayerJob {
  model::Qwen3Model* model = nullptr;
  int64_t index = 0;                      // decoder layer index
  std::string prefix;                     // "model.layers.<index>."
  std::vector<at::Tensor>* xs = nullptr;  // calibration inputs (see the contract above)
  const model::RopeTables* rope = nullptr;
  // MoE experts routed fewer calibration tokens than this use the method's documented
  // fallback (reported in LinearReport::note).
  int64_t min_expert_tokens = 16;
  // Ranks that each hold this whole layer (RunOnWholeLayer under tensor parallelism) and may
  // split a search's independent candidates among them; nullptr: this process does it all.
  const model::Collective* split = nullptr;
};

// The linear named `name` (relative HF name, "self_attn.q_proj") in `layer`, or nullptr.
model::Linear* FindLinearIn(model::DecoderLayer& layer, const std::string& name);

class HessianAccumulator;

// GPTQ's and BiLLM's calibration pass: one forward of job's layer over *job.xs with input hooks
// that accumulate H = 2/N sum x x^T for each linear in `names` (relative names) and count the
// tokens that reached it (MoE experts see only their routed tokens). Linears that read the same
// input (model::SharedInputKey: q/k/v, and gate/up of one MLP or expert) share one accumulator,
// fed once: the same H as one accumulator each, at a third (q/k/v) or half (gate/up) of the
// work and memory; an MoE layer's 128 experts hold 128 gate/up Hessians instead of 256. Hooks
// are removed before returning; *job.xs is not changed.
struct LayerHessians {
  std::vector<model::Linear*> linears;  // in the order of `names`
  // Reset each one once used; the last linear of a shared accumulator (use_count() == 1) may
  // take its storage (HessianAccumulator::Release), the others read H().
  std::vector<std::shared_ptr<HessianAccumulator>> h;
  std::vector<int64_t> tokens;
};
StatusOr<LayerHessians> CollectHessians(LayerJob& job, const std::vector<std::string>& names);

}  // namespace bitsweep::quant
