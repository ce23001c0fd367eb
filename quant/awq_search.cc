// The searches of AWQ (quant/awq_search.h, AwqSearchClip of quant/awq.h): the per-group scale
// search and the per-(row, group) clip search, each optionally shared among the ranks of a
// tensor-parallel group. The upstream code each follows is named in quant/awq.cc's header.
#include "quant/awq_search.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "quant/awq.h"
#include "quant/rtn.h"

namespace bitsweep::quant {
namespace awq_internal {
namespace {

using model::ScalingGroup;

constexpr double kMinScale = 1e-4;         // scales.clamp(min=1e-4) (llm-awq, AutoAWQ)
constexpr double kDuoEps = 1e-4;           // AutoAWQ: x^r / (w^(1-r) + 1e-4)
constexpr double kWeightScaleEps = 1e-6;   // AutoAWQ: |w| / (amax|w| + 1e-6)
constexpr double kInitialClipError = 1e9;  // llm-awq auto_clip_layer: min_errs = ones * 1e9
// The module forwards of the scale search run over at most this many tokens at a time, which
// bounds the attention score buffer and the activations.
constexpr int64_t kForwardChunkTokens = 4096;
// Clip search: output rows per batch such that one [n_groups, rows, tokens] buffer stays under
// this many floats. Upstream batches 256 (or 64) rows to bound GPU memory; every (row, group)
// is searched independently, so the batching does not change the result.
constexpr int64_t kClipBatchFloats = int64_t{1} << 24;

// Q(w) for w [out, in] fp32: the grid primitive on every [row, group] slice, sliced exactly as
// RtnQuantize slices, so the search sees the values the final quantization produces.
at::Tensor FakeQuantGroups(const at::Tensor& w, const QuantGrid& g) {
  const int64_t out = w.size(0), in = w.size(1), gs = GroupSize(g, in);
  const at::Tensor slices = w.contiguous().view({out * (in / gs), gs});
  return FakeQuantize(slices, FindParams(slices, g), g).view({out, in});
}

// The inverse direction for per-channel statistics: the mean over the query heads of a kv group.
at::Tensor MeanOverRepeats(const at::Tensor& v, int64_t repeat, int64_t head_dim) {
  if (repeat <= 1) return v;
  return v.view({-1, repeat, head_dim}).mean(1).reshape({-1});
}

using Module = std::function<at::Tensor(const at::Tensor&)>;

// The function whose output a group's search matches (ScalingGroup::module).
StatusOr<Module> MatchedModule(const model::Qwen3Model& m, int64_t i, const model::RopeTables& rope,
                               model::DecoderLayer& layer, const ScalingGroup& g) {
  if (g.module == "self_attn") {
    return Module([&m, i, &rope](const at::Tensor& x) { return m.SelfAttention(i, x, rope); });
  }
  if (g.module == "mlp") {
    if (layer.moe) {
      const model::MoeBlock* b = &*layer.moe;
      return Module([b](const at::Tensor& x) { return b->Forward(x); });
    }
    const model::Mlp* mlp = &*layer.mlp;
    return Module([mlp](const at::Tensor& x) { return mlp->Forward(x); });
  }
  const model::Linear* lin = FindLinearIn(layer, g.module);
  if (lin == nullptr) return absl::InternalError("AWQ: no module \"" + g.module + "\"");
  return Module([lin](const at::Tensor& x) { return lin->Forward(x); });
}

// Splits x along dim 0 (whole samples, or rows of a 2-D feature) into chunks of about
// kForwardChunkTokens tokens.
std::vector<at::Tensor> Chunks(const at::Tensor& x) {
  const int64_t per_row = std::max<int64_t>(1, Tokens(x) / std::max<int64_t>(1, x.size(0)));
  return x.split(std::max<int64_t>(1, kForwardChunkTokens / per_row), 0);
}

// Candidate k of a search is this process's to evaluate: all of them without `split`, else
// every world-th one from its rank (the ranks of a tensor-parallel group that each hold the
// whole layer, LayerJob::split).
bool Mine(const model::Collective* split, int64_t k) {
  return split == nullptr || k % split->world_size() == split->rank();
}

// Combines per-candidate results in place: every entry was written by exactly one rank and is
// zero on the others, so the sum over ranks is that value exactly, the same on every rank.
void Combine(const model::Collective* split, at::Tensor& t) {
  if (split != nullptr && split->world_size() > 1) split->AllReduceSum(t);
}

// mean((org - f(x))^2) in fp32 over all chunks (llm-awq: (org_out - out).float().pow(2).mean()).
double ModuleLoss(const Module& f, const std::vector<at::Tensor>& xs,
                  const std::vector<at::Tensor>& org) {
  double sum = 0;
  int64_t n = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const at::Tensor d = (org[k] - f(xs[k])).to(at::kFloat);
    sum += d.pow(2).sum().item<double>();
    n += d.numel();
  }
  return sum / static_cast<double>(n);
}

}  // namespace

int64_t GroupSize(const QuantGrid& g, int64_t in) { return g.group_size == -1 ? in : g.group_size; }

int64_t Tokens(const at::Tensor& x) {
  return x.defined() && x.numel() > 0 ? x.numel() / x.size(-1) : 0;
}

at::Tensor RepeatScale(const at::Tensor& s, int64_t repeat, int64_t head_dim) {
  if (repeat <= 1) return s;
  const int64_t n_kv = s.numel() / head_dim;
  return s.view({n_kv, 1, head_dim}).expand({n_kv, repeat, head_dim}).reshape({-1});
}

StatusOr<GroupResult> SearchScale(const model::Qwen3Model& m, int64_t i,
                                  const model::RopeTables& rope, model::DecoderLayer& layer,
                                  const ScalingGroup& g, const at::Tensor& x, const QuantGrid& grid,
                                  int n_grid, bool duo, const model::Collective* split) {
  return SearchScale(m, i, rope, layer, g, x,
                     std::vector<std::optional<QuantGrid>>(g.linears.size(), grid), n_grid, duo,
                     split);
}

StatusOr<GroupResult> SearchScale(const model::Qwen3Model& m, int64_t i,
                                  const model::RopeTables& rope, model::DecoderLayer& layer,
                                  const ScalingGroup& g, const at::Tensor& x,
                                  const std::vector<std::optional<QuantGrid>>& grids, int n_grid,
                                  bool duo, const model::Collective* split) {
  if (grids.size() != g.linears.size()) {
    return absl::InternalError("AWQ: one grid per linear of the scaling group expected");
  }
  // The first quantized linear's grid stands for the group where one is needed (duo's weight
  // statistics); a uniform group has only that one.
  const QuantGrid* first = nullptr;
  bool uniform = grids.front().has_value();
  for (const auto& gr : grids) {
    if (gr && first == nullptr) first = &*gr;
    uniform = uniform && gr && gr->bits == grids.front()->bits &&
              gr->group_size == grids.front()->group_size && gr->kind == grids.front()->kind;
  }
  if (first == nullptr) return absl::InternalError("AWQ: a scaling group with no grid searched");
  const QuantGrid& grid = *first;
  std::vector<model::Linear*> lins;
  std::vector<at::Tensor> orig;
  for (const auto& name : g.linears) {
    model::Linear* lin = FindLinearIn(layer, name);
    if (lin == nullptr) return absl::InternalError("AWQ: no linear \"" + name + "\"");
    lins.push_back(lin);
    orig.push_back(lin->weight());
  }
  ASSIGN_OR_RETURN(Module f, MatchedModule(m, i, rope, layer, g));
  const int64_t in = x.size(-1);
  const int64_t rep = std::max<int64_t>(1, g.repeat_groups);

  // llm-awq get_act_scale: mean over tokens of |x| per input channel (accumulated in fp32).
  const at::Tensor x_mean = MeanOverRepeats(
      x.reshape({-1, in}).abs().mean({0}, /*keepdim=*/false, at::kFloat), rep, g.head_dim);
  at::Tensor w_mean;
  if (duo) {
    std::vector<at::Tensor> ws;
    for (const auto& w : orig) ws.push_back(w.to(at::kFloat));
    at::Tensor w_scale;
    if (uniform) {
      const at::Tensor w = at::cat(ws, 0).abs();
      const at::Tensor wg = w.view({-1, GroupSize(grid, in)});
      w_scale = (wg / (wg.amax(1, /*keepdim=*/true) + kWeightScaleEps)).view({-1, in});
    } else {
      // Each weight normalised per its own groups (an FP one per the first grid's).
      std::vector<at::Tensor> scaled;
      for (size_t j = 0; j < ws.size(); ++j) {
        const QuantGrid& gj = grids[j] ? *grids[j] : grid;
        const at::Tensor wg = ws[j].abs().view({-1, GroupSize(gj, in)});
        scaled.push_back((wg / (wg.amax(1, /*keepdim=*/true) + kWeightScaleEps)).view({-1, in}));
      }
      w_scale = at::cat(scaled, 0);
    }
    w_mean = MeanOverRepeats(w_scale.mean(0), rep, g.head_dim);
  }

  const std::vector<at::Tensor> xs = Chunks(x);
  std::vector<at::Tensor> org;
  for (const auto& c : xs) org.push_back(f(c));

  auto scale_at = [&](int k) {
    const double ratio = static_cast<double>(k) / n_grid;
    at::Tensor s =
        duo ? (x_mean.pow(ratio) / (w_mean.pow(1.0 - ratio) + kDuoEps)).clamp_min(kMinScale)
            : x_mean.pow(ratio).clamp_min(kMinScale);
    s = s / (s.max() * s.min()).sqrt();
    if (duo) s.masked_fill_(s.isinf().logical_or(s.isnan()), 1.0);
    return s;
  };
  auto restore = [&] {
    for (size_t j = 0; j < lins.size(); ++j) lins[j]->SetWeight(orig[j]);
  };
  at::Tensor losses = at::zeros({n_grid}, x.options().dtype(at::kDouble));
  try {
    for (int k = 0; k < n_grid; ++k) {
      if (!Mine(split, k)) continue;
      const at::Tensor s_row = RepeatScale(scale_at(k), rep, g.head_dim).unsqueeze(0);
      for (size_t j = 0; j < lins.size(); ++j) {
        if (!grids[j]) continue;  // kept in FP: W s / s is W
        lins[j]->SetWeight(FakeQuantGroups(orig[j].to(at::kFloat) * s_row, *grids[j]) / s_row);
      }
      losses[k] = ModuleLoss(f, xs, org);
      restore();
    }
  } catch (...) {
    restore();
    throw;
  }
  Combine(split, losses);
  GroupResult r;
  r.searched = true;
  r.ratio0_loss = losses[0].item<double>();
  double best = std::numeric_limits<double>::infinity();
  int best_k = -1;
  for (int k = 0; k < n_grid; ++k) {
    const double loss = losses[k].item<double>();
    if (loss < best) {
      best = loss;
      best_k = k;
    }
  }
  if (best_k >= 0) {
    r.ratio = static_cast<double>(best_k) / n_grid;
    r.s = scale_at(best_k);
  }
  if (!r.s.defined()) {
    return absl::InternalError(absl::StrCat("AWQ scale search for ", absl::StrJoin(g.linears, ","),
                                            ": no ratio gave a finite loss"));
  }
  r.loss = best;
  return r;
}

Status ValidateOptions(const AwqOptions& o) {
  if (o.n_grid < 1) {
    return absl::InvalidArgumentError(absl::StrCat("AwqOptions.n_grid = ", o.n_grid, " < 1"));
  }
  if (!(o.max_shrink >= 0 && o.max_shrink <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("AwqOptions.max_shrink = ", o.max_shrink, " is outside [0, 1]"));
  }
  if (o.clip_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("AwqOptions.clip_tokens = ", o.clip_tokens, " < 1"));
  }
  return absl::OkStatus();
}

namespace {

// Under `split` each rank searches its share of the row batches; the bounds and steps are
// combined, so every rank holds what the serial loop finds.
StatusOr<AwqClip> SearchClipImpl(const at::Tensor& w, const at::Tensor& x, const QuantGrid& g,
                                 const AwqOptions& o, const model::Collective* split) {
  const int64_t out = w.size(0), in = w.size(1), gs = GroupSize(g, in), ng = in / gs;
  at::Tensor xf = x.reshape({-1, in});
  const int64_t n_tok = xf.size(0);
  // llm-awq: input_feat[:, 0::n_tok // n_sample_token] (AutoAWQ guards the step with max(1, .)).
  const int64_t step = std::max<int64_t>(1, n_tok / o.clip_tokens);
  xf = xf.slice(0, 0, n_tok, step).to(at::kFloat).contiguous();
  const int64_t t = xf.size(0);
  const at::Tensor xg = xf.view({t, ng, gs}).permute({1, 2, 0}).contiguous();  // [ng, gs, t]
  const at::Tensor wf = w.to(at::kFloat).contiguous().view({out, ng, gs});
  const at::Tensor org_max = wf.abs().amax(-1);  // [out, ng]
  // Python int(max_shrink * n_grid): truncation of the same double product.
  const int64_t n_shrink = static_cast<int64_t>(o.max_shrink * o.n_grid);

  AwqClip r;
  r.max_val = org_max.clone();
  r.steps = at::zeros({out, ng}, wf.options().dtype(at::kLong));
  const int64_t rows = std::max<int64_t>(1, kClipBatchFloats / std::max<int64_t>(1, ng * t));
  for (int64_t r0 = 0; r0 < out; r0 += rows) {
    const int64_t nb = std::min(rows, out - r0);
    if (!Mine(split, r0 / rows)) {
      r.max_val.narrow(0, r0, nb).zero_();  // another rank's batch (Combine below)
      continue;
    }
    const at::Tensor wb = wf.narrow(0, r0, nb);                     // [nb, ng, gs]
    const at::Tensor org_out = at::bmm(wb.permute({1, 0, 2}), xg);  // [ng, nb, t]
    const at::Tensor max_b = org_max.narrow(0, r0, nb);             // [nb, ng]
    at::Tensor best = r.max_val.narrow(0, r0, nb);
    at::Tensor steps = r.steps.narrow(0, r0, nb);
    at::Tensor min_err = at::full({nb, ng}, kInitialClipError, wf.options());
    for (int64_t i_s = 0; i_s < n_shrink; ++i_s) {
      const at::Tensor max_val = max_b * (1.0 - static_cast<double>(i_s) / o.n_grid);
      const at::Tensor mv = max_val.unsqueeze(-1);
      const at::Tensor cur = at::minimum(at::maximum(wb, -mv), mv).reshape({nb * ng, gs});
      const at::Tensor q = FakeQuantize(cur, FindParams(cur, g), g).view({nb, ng, gs});
      const at::Tensor cur_out = at::bmm(q.permute({1, 0, 2}), xg);    // [ng, nb, t]
      const at::Tensor err = (cur_out - org_out).pow(2).mean(-1).t();  // [nb, ng]
      const at::Tensor better = err.lt(min_err);
      min_err = at::where(better, err, min_err);
      best.copy_(at::where(better, max_val, best));
      steps.masked_fill_(better, i_s);
    }
  }
  if (split != nullptr && split->world_size() > 1) {
    Combine(split, r.max_val);
    at::Tensor steps = r.steps.to(at::kDouble);  // small integers: exact in double
    Combine(split, steps);
    r.steps = steps.to(at::kLong);
  }
  return r;
}

}  // namespace
}  // namespace awq_internal

using awq_internal::Tokens;
using awq_internal::ValidateOptions;

StatusOr<AwqClip> AwqSearchClip(const at::Tensor& w, const at::Tensor& x, const QuantGrid& grid,
                                const AwqOptions& options, const model::Collective* split) {
  if (!w.defined() || w.dim() != 2 || !w.is_floating_point() || w.size(0) == 0) {
    return absl::InvalidArgumentError("AwqSearchClip: w must be a non-empty 2-D float tensor");
  }
  if (!x.defined() || x.dim() < 2 || !x.is_floating_point() || x.size(-1) != w.size(1) ||
      Tokens(x) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("AwqSearchClip: x must be a float [tokens, ",
                                                   w.size(1), "] tensor with tokens > 0"));
  }
  RETURN_IF_ERROR(ValidateOptions(options));
  QuantGrid g = grid;
  g.kind = GridKind::kMinMax;
  RETURN_IF_ERROR(g.Validate(w.size(1)));
  try {
    c10::NoGradGuard no_grad;
    return awq_internal::SearchClipImpl(w, x, g, options, split);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("AwqSearchClip: ", e.what_without_backtrace()));
  }
}

}  // namespace bitsweep::quant
