// Internal to quant/: the searches of AWQ (quant/awq_search.cc) that the per-layer driver
// (quant/awq.cc) runs: the per-group scale search, and the shape helpers both use.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/arch.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "quant/awq.h"
#include "quant/grid.h"

namespace bitsweep::quant::awq_internal {

// The group size of `g` on a linear with `in` input features (-1: the whole row).
int64_t GroupSize(const QuantGrid& g, int64_t in);

// Tokens in a feature [..., in] (0 for an undefined one: no token reached the linear).
int64_t Tokens(const at::Tensor& x);

// s [n_kv*head_dim] -> [n_kv*repeat*head_dim]: consumer column h*head_dim + d (query head h)
// takes s[(h / repeat)*head_dim + d], the channel of the kv head that query head reads.
at::Tensor RepeatScale(const at::Tensor& s, int64_t repeat, int64_t head_dim);

// InvalidArgument naming the first AwqOptions field out of range.
Status ValidateOptions(const AwqOptions& o);

// What SearchScale found for one scaling group.
struct GroupResult {
  bool searched = false;  // false: s = 1, nothing applied
  at::Tensor s;           // [n] fp32, the chosen scale (searched groups)
  double ratio = 0;
  double loss = 0;         // the module loss at the chosen ratio (s = 1 when not searched)
  double ratio0_loss = 0;  // the module loss at ratio 0 (s = 1)
  std::string note;
};

// llm-awq _search_module_scale on the group's feature x (its input_of's input, [..., in]) with
// the layer's current (original) weights, which it restores. With n_grid = 1 only ratio 0
// (s = 1) is tried: the loss of plain quantization.
// Under `split` each rank evaluates its share of the ratios and the losses are combined, so
// every rank picks the same ratio the serial loop would (the first smallest finite loss).
StatusOr<GroupResult> SearchScale(const model::Qwen3Model& m, int64_t i,
                                  const model::RopeTables& rope, model::DecoderLayer& layer,
                                  const model::ScalingGroup& g, const at::Tensor& x,
                                  const QuantGrid& grid, int n_grid, bool duo,
                                  const model::Collective* split);
// Mixed precision: grids[j] is g.linears[j]'s (nullopt: left in FP during the search; at least
// one is set). Equal grids give the overload above's numbers.
StatusOr<GroupResult> SearchScale(const model::Qwen3Model& m, int64_t i,
                                  const model::RopeTables& rope, model::DecoderLayer& layer,
                                  const model::ScalingGroup& g, const at::Tensor& x,
                                  const std::vector<std::optional<QuantGrid>>& grids, int n_grid,
                                  bool duo, const model::Collective* split);

}  // namespace bitsweep::quant::awq_internal
