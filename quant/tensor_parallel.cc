#include "quant/tensor_parallel.h"

#include <ATen/ATen.h>

#include "model/collective.h"
#include "model/linear.h"
#include "model/qwen3.h"

namespace bitsweep::quant {

StatusOr<QuantizedWeight> QuantizeRowsSharded(const model::Collective& tp, model::Linear& lin,
                                              const RowQuantizer& quantize) {
  const int rank = tp.rank(), world = tp.world_size();
  const model::ParallelStyle style = world > 1 ? lin.style() : model::ParallelStyle::kReplicated;
  at::Tensor rows = lin.weight();
  if (style == model::ParallelStyle::kRow) {
    // Rank r takes rows [r*out/W, ...) of the whole-width weight.
    const at::Tensor full = tp.AllGather(lin.weight(), 1);
    const model::ShardRange r = model::EvenShard(full.size(0), rank, world);
    rows = full.narrow(0, r.begin, r.size);
  }
  ASSIGN_OR_RETURN(QuantizedWeight piece, quantize(rows));
  if (style == model::ParallelStyle::kReplicated) {
    lin.SetWeight(piece.Dequantize());
    return piece;
  }
  QuantizedWeight whole = piece;
  whole.codes = tp.AllGather(piece.codes, 0);
  whole.scales = tp.AllGather(piece.scales, 0);
  whole.zeros = tp.AllGather(piece.zeros, 0);
  if (style == model::ParallelStyle::kColumn) {
    lin.SetWeight(piece.Dequantize());
  } else {
    const model::ShardRange c = model::EvenShard(whole.codes.size(1), rank, world);
    lin.SetWeight(whole.Dequantize().narrow(1, c.begin, c.size));
  }
  return whole;
}

double SumOverRanks(const model::Collective& tp, double local) {
  if (tp.world_size() == 1) return local;
  at::Tensor t = at::full({1}, local, at::TensorOptions(tp.device()).dtype(at::kDouble));
  tp.AllReduceSum(t);
  return t.item<double>();
}

Status RunOnWholeLayer(LayerJob& job, const std::function<Status(LayerJob&)>& per_layer) {
  model::Qwen3Model& m = *job.model;
  if (m.tp()->world_size() == 1) return per_layer(job);
  ASSIGN_OR_RETURN(std::unique_ptr<model::Qwen3Model> whole, m.GatherLayer(job.index));
  LayerJob whole_job = job;
  whole_job.model = whole.get();
  whole_job.split = m.tp().get();
  RETURN_IF_ERROR(per_layer(whole_job));
  return m.ScatterLayer(job.index, *whole);
}

}  // namespace bitsweep::quant
