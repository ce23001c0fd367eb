// Round-to-nearest: every group of a weight quantised independently on a grid
// (docs/methods.md#rtn).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"
#include "quant/method.h"

namespace bitsweep::model {
class Collective;
class Linear;
}  // namespace bitsweep::model

namespace bitsweep::quant {

// w: [out, in] (any float dtype). Per output channel when grid.group_size == -1, else per
// [row, group_size] slice. InvalidArgument when the grid does not fit w.
StatusOr<QuantizedWeight> RtnQuantize(const at::Tensor& w, const QuantGrid& grid);

// RTN of one linear of a model, its rows split over the tensor-parallel ranks of `tp`: adds the
// integer weight to out->weights under `name` and returns its report (loss = the squared
// weight error summed over ranks; calib_tokens -1). Also GPTQ's fallback for starved experts.
StatusOr<LinearReport> RtnQuantizeLinear(const model::Collective& tp, model::Linear& lin,
                                         const std::string& name, const QuantGrid& grid,
                                         QuantizeResult* out);

// The "rtn" row of common/catalog.cc: the grid with zero in range; with released_code, per
// channel whatever the group size says (the study's released code, docs/methods.md#released-code).
StatusOr<QuantizerPtr> MakeRtnQuantizer(const MethodInfo& row, const QuantConfig& config);

}  // namespace bitsweep::quant
