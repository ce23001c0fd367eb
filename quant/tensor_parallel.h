// Quantization of a tensor-parallel model (model/qwen3.h, LoadOptions::tp): every rank runs
// QuantizeModel on its shard and the result equals the whole model's quantization.
//
//  * Row-independent methods (RTN, GPTQ) split the work by output rows. A column-parallel
//    linear quantizes its own rows; its input is the replicated hidden state, so its Hessian is
//    the whole one. A row-parallel linear (o_proj, down_proj, experts' down_proj) gathers its
//    input features in the Hessian hook (quant/layer_job.cc), so GPTQ keeps its cross-column
//    error compensation over the whole input, and rank r quantizes rows [r*out/W, ...) of the
//    gathered weight. The integer weights are gathered, so every rank holds the whole
//    QuantizedWeight (rank 0 exports it) and keeps its own shard of the dequantized weight.
//  * SmoothQuant runs sharded too: its activation maxima come from the replicated inputs of
//    the normed linears, the per-input-channel weight maxima over their (column-parallel) rows
//    are all-reduced with max, so every rank derives the same smoothing scales, and the
//    per-channel weight quantization is row-local (QuantizeRowsSharded).
//  * AWQ and BiLLM (whose searches couple rows: scale and clipping searches over a module's
//    output, BiLLM's column saliency) quantize each decoder layer whole: the layer is gathered
//    on every rank, quantized exactly as on one device, and re-sharded; memory is one whole
//    layer plus the shards. AWQ's searches, its cost, are split (LayerJob::split): each rank
//    evaluates every world-th scale ratio and clip row batch and the results are combined, so
//    every rank makes the serial search's choices at 1/N of its work. BiLLM's work is repeated
//    on every rank.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"

namespace bitsweep::model {
class Collective;
class Linear;
}  // namespace bitsweep::model

namespace bitsweep::quant {

// Quantizes rows of a (full-width) weight: [rows, in_features] -> the QuantizedWeight of
// those rows.
using RowQuantizer = std::function<StatusOr<QuantizedWeight>(const at::Tensor& rows)>;

// Runs `quantize` on this rank's rows of `lin` (the whole weight when it is replicated or the
// world has one rank), gathers the whole QuantizedWeight from every rank and sets lin's weight
// to its shard of the dequantized result. Collective.
StatusOr<QuantizedWeight> QuantizeRowsSharded(const model::Collective& tp, model::Linear& lin,
                                              const RowQuantizer& quantize);

// The sum over the group of each rank's share of a loss. Collective.
double SumOverRanks(const model::Collective& tp, double local);

// Gathers job's layer, runs `per_layer` on a LayerJob over the whole layer (a world-of-one
// model) and scatters the result back into job.model. Collective.
Status RunOnWholeLayer(LayerJob& job, const std::function<Status(LayerJob&)>& per_layer);

}  // namespace bitsweep::quant
