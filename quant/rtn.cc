// RTN (docs/methods.md#rtn): the grid primitive applied to every group of a weight independently.
#include "quant/rtn.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/qwen3.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

StatusOr<QuantizedWeight> RtnQuantizeImpl(const at::Tensor& w, const QuantGrid& grid) {
  c10::NoGradGuard no_grad;  // weights may be trainable parameters
  const int64_t out = w.size(0);
  const int64_t in = w.size(1);
  const int64_t group = grid.group_size == -1 ? in : grid.group_size;
  const int64_t n_groups = in / group;

  // Every [row, group] slice becomes one row of `slices` [out * n_groups, group], so the per-row
  // primitives see one group per row; row r, group g lands at r * n_groups + g.
  const at::Tensor slices = w.to(at::kFloat).contiguous().view({out * n_groups, group});
  const GroupParams p = FindParams(slices, grid);

  QuantizedWeight q;
  q.grid = grid;
  q.codes = QuantizeCodes(slices, p, grid).view({out, in}).to(at::kInt);
  q.scales = p.scale.view({out, n_groups});
  q.zeros = p.zero.view({out, n_groups});
  q.g_idx = at::arange(in, w.options().dtype(at::kLong)).div(group, "floor").to(at::kInt);
  return q;
}

}  // namespace

StatusOr<QuantizedWeight> RtnQuantize(const at::Tensor& w, const QuantGrid& grid) {
  if (!w.defined() || w.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "RtnQuantize: w must be a 2-D [out, in] tensor, got ",
        w.defined() ? absl::StrCat(w.dim(), "-D") : std::string("an undefined tensor")));
  }
  if (!w.is_floating_point()) {
    return absl::InvalidArgumentError("RtnQuantize: w must be a floating-point tensor");
  }
  if (w.size(0) == 0) return absl::InvalidArgumentError("RtnQuantize: w has no rows");
  RETURN_IF_ERROR(grid.Validate(w.size(1)));
  try {
    return RtnQuantizeImpl(w, grid);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("RtnQuantize: ", e.what_without_backtrace()));
  }
}

StatusOr<LinearReport> RtnQuantizeLinear(const model::Collective& tp, model::Linear& lin,
                                         const std::string& name, const QuantGrid& grid,
                                         QuantizeResult* out) {
  double error = 0;
  ASSIGN_OR_RETURN(
      QuantizedWeight q,
      QuantizeRowsSharded(tp, lin, [&](const at::Tensor& rows) -> StatusOr<QuantizedWeight> {
        ASSIGN_OR_RETURN(QuantizedWeight piece, RtnQuantize(rows, grid));
        error = (rows.to(at::kFloat) - piece.Dequantize()).pow(2).sum().item<double>();
        return piece;
      }));
  LinearReport r{name, SumOverRanks(tp, error), -1, "", {}};
  q.NarrowCodes();  // held until the layer is written: a quarter of int32's memory
  out->weights.emplace(name, std::move(q));
  return r;
}

namespace {

class RtnMethod : public Quantizer {
 public:
  using Quantizer::Quantizer;

  Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const override {
    model::DecoderLayer& layer = job.model->layer(job.index);
    for (const auto& name : model::QuantizedLinears(layer)) {
      const std::optional<QuantGrid> g = LinearGrid(job.index, name);
      if (!g) continue;  // kept in full precision (mixed recipe)
      ASSIGN_OR_RETURN(LinearReport r,
                       RtnQuantizeLinear(*job.model->tp(), *FindLinearIn(layer, name),
                                         job.prefix + name, *g, out));
      out->linears.push_back(r);
    }
    return absl::OkStatus();
  }

  // RtnQuantize converts each weight to fp32 itself; no forward runs.
  bool reads_weights_only() const override { return true; }

  nlohmann::json Recipe() const override { return nullptr; }
};

}  // namespace

StatusOr<QuantizerPtr> MakeRtnQuantizer(const MethodInfo& row, const QuantConfig& config) {
  // Per channel under released_code: NormalizeQuantConfig has set the group size to -1.
  return QuantizerPtr(new RtnMethod(row, config, ConfigGrid(config, GridKind::kMinMaxWithZero)));
}

}  // namespace bitsweep::quant
