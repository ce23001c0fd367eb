// AWQ per decoder layer, METHODS.md §2.4. Upstream: mit-han-lab/llm-awq
// awq/quantize/pre_quant.py (run_awq: cache inputs, FP-propagate, scale, clip),
// auto_scale.py (auto_scale_block/_search_module_scale, apply_scale), auto_clip.py
// (auto_clip_layer/apply_clip), quantizer.py (pseudo_quantize_tensor = our kMinMax grid).
// duo_scaling follows AutoAWQ (casper-hansen/AutoAWQ awq/quantize/quantizer.py,
// AwqQuantizer._search_best_scale / _compute_best_scale):
//   weight  = cat([fc.weight for fc in layers], 0).view(-1, group_size)   # per channel: in
//   w_scale = |weight| / (amax(|weight|, dim=1) + 1e-6), viewed back to [rows, in]
//   w_mean  = w_scale.mean(0)                                  # per input channel
//   scales  = (x_mean^r / (w_mean^(1-r) + 1e-4)).clamp(min=1e-4); scales /= sqrt(max*min);
//   scales[isinf | isnan] = 1
// (llm-awq's auto_scale.py has the same get_weight_scale without the 1e-6 but never calls it.)
//
// Deviations, all numerical: the weight arithmetic of the search (W*s, Q, /s), the statistics
// (x_mean, w_mean, s), the scaled features and the clip search run in fp32, where llm-awq runs
// them in the model dtype (bf16 in Q3Q); weights are then stored in the model's compute dtype.
// Module outputs of the search are computed in chunks of samples and the squared error summed
// over chunks (upstream: one batch). The clip search's sum over a group is a batched matmul
// (upstream: an elementwise product and sum), which changes only the summation order.
// Extensions (documented in awq.h): v->o under GQA with a scale shared per kv group, and MoE
// layers (router scaled with the experts' gate/up; experts with too few routed tokens keep
// s = 1 for up->down and skip the clip search).
#include "quant/awq.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/arch.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "quant/rtn.h"

namespace bitsweep::quant {
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

int64_t GroupSize(const QuantGrid& g, int64_t in) { return g.group_size == -1 ? in : g.group_size; }

// Tokens in a feature [..., in] (0 for an undefined one: no token reached the linear).
int64_t Tokens(const at::Tensor& x) {
  return x.defined() && x.numel() > 0 ? x.numel() / x.size(-1) : 0;
}

std::string Shape(at::IntArrayRef s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

// Q(w) for w [out, in] fp32: the grid primitive on every [row, group] slice, sliced exactly as
// RtnQuantize slices, so the search sees the values the final quantization produces.
at::Tensor FakeQuantGroups(const at::Tensor& w, const QuantGrid& g) {
  const int64_t out = w.size(0), in = w.size(1), gs = GroupSize(g, in);
  const at::Tensor slices = w.contiguous().view({out * (in / gs), gs});
  return FakeQuantize(slices, FindParams(slices, g), g).view({out, in});
}

// s [n_kv*head_dim] -> [n_kv*repeat*head_dim]: consumer column h*head_dim + d (query head h)
// takes s[(h / repeat)*head_dim + d], the channel of the kv head that query head reads.
at::Tensor RepeatScale(const at::Tensor& s, int64_t repeat, int64_t head_dim) {
  if (repeat <= 1) return s;
  const int64_t n_kv = s.numel() / head_dim;
  return s.view({n_kv, 1, head_dim}).expand({n_kv, repeat, head_dim}).reshape({-1});
}

// The inverse direction for per-channel statistics: the mean over the query heads of a kv group.
at::Tensor MeanOverRepeats(const at::Tensor& v, int64_t repeat, int64_t head_dim) {
  if (repeat <= 1) return v;
  return v.view({-1, repeat, head_dim}).mean(1).reshape({-1});
}

at::Tensor* FindNorm(model::DecoderLayer& layer, const std::string& name) {
  if (name == "input_layernorm") return &layer.input_layernorm;
  if (name == "post_attention_layernorm") return &layer.post_attention_layernorm;
  return nullptr;
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
                                  const ScalingGroup& g, const at::Tensor& x, const QuantGrid& grid,
                                  int n_grid, bool duo, const model::Collective* split) {
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
    const at::Tensor w = at::cat(ws, 0).abs();
    const at::Tensor wg = w.view({-1, GroupSize(grid, in)});
    const at::Tensor w_scale =
        (wg / (wg.amax(1, /*keepdim=*/true) + kWeightScaleEps)).view({-1, in});
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
  at::Tensor losses = at::zeros({n_grid}, at::kDouble);
  try {
    for (int k = 0; k < n_grid; ++k) {
      if (!Mine(split, k)) continue;
      const at::Tensor s_row = RepeatScale(scale_at(k), rep, g.head_dim).unsqueeze(0);
      for (size_t j = 0; j < lins.size(); ++j) {
        lins[j]->SetWeight(FakeQuantGroups(orig[j].to(at::kFloat) * s_row, grid) / s_row);
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

// Input hooks that record every input a linear sees, removed on destruction.
class InputRecorder {
 public:
  ~InputRecorder() {
    for (model::Linear* lin : hooked_) lin->SetInputHook(nullptr);
  }
  void Hook(const std::string& name, model::Linear* lin) {
    std::vector<at::Tensor>* list = &seen_[name];
    lin->SetInputHook([list](const at::Tensor& x) {
      list->push_back(x);
      return x;
    });
    hooked_.push_back(lin);
  }
  // Each linear's inputs concatenated along dim 0. Linears fed the very same tensors (q/k/v,
  // gate/up) share one concatenation instead of holding copies.
  std::map<std::string, at::Tensor> Take() {
    for (model::Linear* lin : hooked_) lin->SetInputHook(nullptr);
    hooked_.clear();
    std::map<std::string, at::Tensor> out;
    std::vector<std::pair<const std::vector<at::Tensor>*, at::Tensor>> made;
    for (const auto& [name, list] : seen_) {
      if (list.empty()) continue;
      at::Tensor t;
      for (const auto& [other, tensor] : made) {
        if (other->size() != list.size()) continue;
        bool same = true;
        for (size_t k = 0; k < list.size() && same; ++k) same = (*other)[k].is_same(list[k]);
        if (same) {
          t = tensor;
          break;
        }
      }
      if (!t.defined()) {
        t = list.size() == 1 ? list[0] : at::cat(list, 0);
        made.push_back({&list, t});
      }
      out[name] = t;
    }
    made.clear();
    seen_.clear();
    return out;
  }

 private:
  std::vector<model::Linear*> hooked_;
  std::map<std::string, std::vector<at::Tensor>> seen_;
};

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
  r.steps = at::zeros({out, ng}, at::kLong);
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
    at::Tensor min_err = at::full({nb, ng}, kInitialClipError, at::kFloat);
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

Status QuantizeLayerImpl(LayerJob& job, const QuantGrid& g, const AwqOptions& o,
                         QuantizeResult* out) {
  c10::NoGradGuard no_grad;
  model::Qwen3Model& m = *job.model;
  const int64_t i = job.index;
  model::DecoderLayer& layer = m.layer(i);
  const model::RopeTables& rope = *job.rope;
  const model::Qwen3Config& c = m.config();
  const std::vector<ScalingGroup> groups =
      model::ScalingGroups(layer, c.num_attention_heads, c.num_key_value_heads, c.head_dim);
  const std::vector<std::string> names = model::QuantizedLinears(layer);
  const std::map<std::string, model::LinearRole> roles = model::LinearRoles(layer);
  auto is_expert = [&roles](const std::string& n) {
    auto it = roles.find(n);
    return it != roles.end() && it->second.expert;
  };

  std::map<std::string, size_t> group_of;  // linear -> the group that scales its input
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    for (const auto& n : groups[gi].linears) group_of[n] = gi;
  }
  for (const auto& n : names) {
    model::Linear* lin = FindLinearIn(layer, n);
    if (lin == nullptr || group_of.count(n) == 0) {
      return absl::InternalError("AWQ: linear " + n + " is missing or in no scaling group");
    }
    Status s = g.Validate(lin->in_features());
    if (!s.ok())
      return absl::InvalidArgumentError(job.prefix + n + ": " + std::string(s.message()));
  }

  // 1. One FP forward: every linear's input, and the FP outputs (the next layer's inputs).
  std::vector<at::Tensor> ys;
  std::map<std::string, at::Tensor> feat;
  {
    InputRecorder rec;
    std::set<std::string> hooked(names.begin(), names.end());
    for (const auto& gr : groups) hooked.insert(gr.input_of);
    for (const auto& n : hooked) {
      model::Linear* lin = FindLinearIn(layer, n);
      if (lin == nullptr) return absl::InternalError("AWQ: no linear \"" + n + "\"");
      rec.Hook(n, lin);
    }
    for (const at::Tensor& x : *job.xs) ys.push_back(m.RunLayer(i, x, rope));
    feat = rec.Take();
  }
  auto feature = [&feat](const std::string& n) {
    auto it = feat.find(n);
    return it == feat.end() ? at::Tensor() : it->second;
  };

  // 2. Scale search, every group on the original weights and features.
  std::vector<GroupResult> results(groups.size());
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    const ScalingGroup& gr = groups[gi];
    const at::Tensor x = feature(gr.input_of);
    const int64_t tokens = Tokens(x);
    std::string skip;
    if (gr.shares_kv_heads && !o.scale_v_to_o) {
      const model::Linear* prev = FindLinearIn(layer, gr.prev);
      const model::Linear* cons = FindLinearIn(layer, gr.linears.front());
      if (prev == nullptr || cons == nullptr) return absl::InternalError("AWQ: v/o missing");
      if (!prev->weight().sizes().equals(cons->weight().sizes())) {
        skip = absl::StrCat("v_proj->o_proj scaling skipped (scale_v_to_o = false, llm-awq's ",
                            "v.shape == o.shape fails: ", Shape(prev->weight().sizes()), " vs ",
                            Shape(cons->weight().sizes()), ")");
      }
    }
    if (is_expert(gr.input_of) && (tokens == 0 || tokens < job.min_expert_tokens)) {
      skip = absl::StrCat("up->down scale search skipped (s = 1): ", tokens,
                          " routed calibration tokens (< ", job.min_expert_tokens, ")");
    }
    if (skip.empty() && tokens == 0) {
      return absl::InternalError("AWQ: no calibration input reached " + job.prefix + gr.input_of);
    }
    if (skip.empty()) {
      ASSIGN_OR_RETURN(results[gi], SearchScale(m, i, rope, layer, gr, x, g, o.n_grid,
                                                o.duo_scaling, job.split));
    } else {
      if (tokens > 0) {
        ASSIGN_OR_RETURN(results[gi],
                         SearchScale(m, i, rope, layer, gr, x, g, 1, false, job.split));
      }
      results[gi].searched = false;
      results[gi].s = at::Tensor();
      results[gi].note = skip;
    }
  }

  // 3. Apply every chosen scale (llm-awq apply_scale, after the whole search).
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    if (results[gi].searched) RETURN_IF_ERROR(AwqApplyScale(layer, groups[gi], results[gi].s));
  }

  // 4. Clip search on the scaled weights and the scaled features, then clamp.
  std::map<std::string, double> shrink_mean;
  std::map<std::string, std::string> clip_note;
  if (o.clip) {
    for (const auto& n : names) {
      if (!roles.at(n).clip_searched) continue;
      at::Tensor x = feature(n);
      const int64_t tokens = Tokens(x);
      if (tokens == 0 || (is_expert(n) && tokens < job.min_expert_tokens)) {
        clip_note[n] = absl::StrCat("clip search skipped: ", tokens, " routed calibration tokens");
        continue;
      }
      model::Linear* lin = FindLinearIn(layer, n);
      const int64_t in = lin->in_features();
      // Subsample before dividing by s (the stride rule is idempotent, so AwqSearchClip keeps
      // exactly these tokens) to avoid an fp32 copy of the whole feature.
      x = x.reshape({-1, in});
      x = x.slice(0, 0, tokens, std::max<int64_t>(1, tokens / o.clip_tokens)).to(at::kFloat);
      const GroupResult& gres = results[group_of.at(n)];
      if (gres.searched) {
        const ScalingGroup& gr = groups[group_of.at(n)];
        x = x / RepeatScale(gres.s, std::max<int64_t>(1, gr.repeat_groups), gr.head_dim);
      }
      ASSIGN_OR_RETURN(AwqClip cl, AwqSearchClip(lin->weight(), x, g, o, job.split));
      const int64_t rows = lin->out_features(), gs = GroupSize(g, in);
      const at::Tensor mv = cl.max_val.unsqueeze(-1);
      const at::Tensor w = lin->weight().to(at::kFloat).view({rows, in / gs, gs});
      lin->SetWeight(at::minimum(at::maximum(w, -mv), mv).view({rows, in}));
      shrink_mean[n] = cl.steps.to(at::kDouble).mean().item<double>() / o.n_grid;
    }
  }

  // 5. Every linear on the grid.
  for (const auto& n : names) {
    model::Linear* lin = FindLinearIn(layer, n);
    ASSIGN_OR_RETURN(QuantizedWeight q, RtnQuantize(lin->weight(), g));
    lin->SetWeight(q.Dequantize());
    const GroupResult& gres = results[group_of.at(n)];
    LinearReport rep;
    rep.name = job.prefix + n;
    rep.loss = gres.loss;
    rep.calib_tokens = Tokens(feature(n));
    std::vector<std::string> notes;
    if (!gres.note.empty()) notes.push_back(gres.note);
    if (clip_note.count(n)) notes.push_back(clip_note[n]);
    rep.note = absl::StrJoin(notes, "; ");
    if (gres.searched) {
      rep.stats["ratio"] = gres.ratio;
      rep.stats["ratio0_loss"] = gres.ratio0_loss;
    }
    if (shrink_mean.count(n)) rep.stats["clip_shrink_mean"] = shrink_mean[n];
    out->linears.push_back(std::move(rep));
    out->weights.insert_or_assign(job.prefix + n, std::move(q));
  }
  *job.xs = std::move(ys);
  return absl::OkStatus();
}

}  // namespace

Status AwqApplyScale(model::DecoderLayer& layer, const ScalingGroup& group, const at::Tensor& s) {
  if (!s.defined() || s.dim() != 1 || s.numel() == 0 || !s.is_floating_point()) {
    return absl::InvalidArgumentError("AwqApplyScale: s must be a non-empty 1-D float tensor");
  }
  const int64_t n = s.numel();
  const int64_t rep = std::max<int64_t>(1, group.repeat_groups);
  if (rep > 1 && (group.head_dim <= 0 || n % group.head_dim != 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AwqApplyScale: s has ", n, " entries, not a multiple of group.head_dim = ", group.head_dim,
        " (needed with repeat_groups = ", rep, ")"));
  }
  try {
    c10::NoGradGuard no_grad;
    at::Tensor* norm = nullptr;
    model::Linear* prev = nullptr;
    if (group.prev_kind == ScalingGroup::PrevKind::kNorm) {
      norm = FindNorm(layer, group.prev);
      if (norm == nullptr || norm->numel() != n) {
        return absl::InvalidArgumentError(absl::StrCat("AwqApplyScale: group.prev \"", group.prev,
                                                       "\" is not a norm of ", n, " entries"));
      }
    } else {
      prev = FindLinearIn(layer, group.prev);
      if (prev == nullptr || prev->out_features() < n) {
        return absl::InvalidArgumentError(absl::StrCat("AwqApplyScale: group.prev \"", group.prev,
                                                       "\" is not a linear with >= ", n, " rows"));
      }
    }
    std::vector<model::Linear*> consumers;
    std::vector<std::string> cnames = group.linears;
    cnames.insert(cnames.end(), group.also_scaled.begin(), group.also_scaled.end());
    for (const auto& name : cnames) {
      model::Linear* lin = FindLinearIn(layer, name);
      if (lin == nullptr || lin->in_features() != n * rep) {
        return absl::InvalidArgumentError(absl::StrCat(
            "AwqApplyScale: \"", name, "\" is not a linear with ", n * rep, " input columns"));
      }
      consumers.push_back(lin);
    }
    const at::Tensor sf = s.to(at::kFloat);
    if (norm != nullptr) {
      *norm = (norm->to(at::kFloat) / sf).to(norm->scalar_type());  // scale_ln_fcs
    } else {
      // scale_fc_fc: fc1.weight[-len(s):] /= s[:, None].
      const at::Tensor w = prev->weight().to(at::kFloat);
      const int64_t rows = w.size(0);
      prev->SetWeight(
          at::cat({w.narrow(0, 0, rows - n), w.narrow(0, rows - n, n) / sf.unsqueeze(1)}, 0));
    }
    const at::Tensor s_row = RepeatScale(sf, rep, group.head_dim).unsqueeze(0);
    for (model::Linear* lin : consumers) lin->SetWeight(lin->weight().to(at::kFloat) * s_row);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("AwqApplyScale: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("AwqApplyScale: ", e.what()));
  }
  return absl::OkStatus();
}

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
    return SearchClipImpl(w, x, g, options, split);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("AwqSearchClip: ", e.what_without_backtrace()));
  }
}

Status AwqQuantizeLayer(LayerJob& job, const QuantGrid& grid, const AwqOptions& options,
                        QuantizeResult* out) {
  if (out == nullptr) return absl::InvalidArgumentError("AwqQuantizeLayer: out is null");
  if (job.model == nullptr || job.xs == nullptr || job.rope == nullptr) {
    return absl::InvalidArgumentError(
        "AwqQuantizeLayer: job.model, job.xs and job.rope are required");
  }
  if (job.index < 0 || job.index >= job.model->num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("AwqQuantizeLayer: job.index = ", job.index, " is out of range"));
  }
  if (job.xs->empty()) {
    return absl::InvalidArgumentError("AwqQuantizeLayer: job.xs holds no calibration inputs");
  }
  const int64_t hidden = job.model->config().hidden_size;
  const int64_t seq = job.rope->cos.defined() ? job.rope->cos.size(0) : -1;
  for (const at::Tensor& x : *job.xs) {
    if (!x.defined() || x.dim() != 3 || x.size(2) != hidden || x.size(1) != seq) {
      return absl::InvalidArgumentError(
          absl::StrCat("AwqQuantizeLayer: job.xs must hold [B, ", seq, ", ", hidden,
                       "] tensors (sequence length of job.rope), got ",
                       x.defined() ? Shape(x.sizes()) : std::string("an undefined tensor")));
    }
  }
  RETURN_IF_ERROR(ValidateOptions(options));
  QuantGrid g = grid;
  g.kind = GridKind::kMinMax;
  try {
    return QuantizeLayerImpl(job, g, options, out);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(job.prefix, "AWQ: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(job.prefix, "AWQ: ", e.what()));
  }
}

}  // namespace bitsweep::quant
