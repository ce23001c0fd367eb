// AWQ per decoder layer, docs/methods.md#awq. Upstream: mit-han-lab/llm-awq
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
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/arch.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "model/shape_string.h"
#include "quant/awq_search.h"
#include "quant/rtn.h"

namespace bitsweep::quant {
namespace {

using awq_internal::GroupResult;
using awq_internal::GroupSize;
using awq_internal::RepeatScale;
using awq_internal::SearchScale;
using awq_internal::Tokens;
using awq_internal::ValidateOptions;
using model::ScalingGroup;
using model::ShapeString;

at::Tensor* FindNorm(model::DecoderLayer& layer, const std::string& name) {
  if (name == "input_layernorm") return &layer.input_layernorm;
  if (name == "post_attention_layernorm") return &layer.post_attention_layernorm;
  return nullptr;
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

// grid_of: each linear's grid, kind kMinMax (nullopt: kept in FP).
Status QuantizeLayerImpl(LayerJob& job, const LinearGridOf& grid_of, const AwqOptions& o,
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
    const std::optional<QuantGrid> g = grid_of(n);
    if (!g) continue;
    Status s = g->Validate(lin->in_features());
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
                            "v.shape == o.shape fails: ", ShapeString(prev->weight().sizes()),
                            " vs ", ShapeString(cons->weight().sizes()), ")");
      }
    }
    if (is_expert(gr.input_of) && (tokens == 0 || tokens < job.min_expert_tokens)) {
      skip = absl::StrCat("up->down scale search skipped (s = 1): ", tokens,
                          " routed calibration tokens (< ", job.min_expert_tokens, ")");
    }
    if (skip.empty() && tokens == 0) {
      return absl::InternalError("AWQ: no calibration input reached " + job.prefix + gr.input_of);
    }
    std::vector<std::optional<QuantGrid>> grids;
    for (const auto& n : gr.linears) grids.push_back(grid_of(n));
    const bool any_quantized =
        std::any_of(grids.begin(), grids.end(), [](const auto& g) { return g.has_value(); });
    if (!any_quantized) skip = "scale search skipped: every linear of the group is kept in FP";
    if (skip.empty()) {
      ASSIGN_OR_RETURN(results[gi], SearchScale(m, i, rope, layer, gr, x, grids, o.n_grid,
                                                o.duo_scaling, job.split));
    } else {
      if (tokens > 0 && any_quantized) {
        ASSIGN_OR_RETURN(results[gi],
                         SearchScale(m, i, rope, layer, gr, x, grids, 1, false, job.split));
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
      const std::optional<QuantGrid> g = grid_of(n);
      if (!g) continue;  // kept in FP: nothing to clip
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
      ASSIGN_OR_RETURN(AwqClip cl, AwqSearchClip(lin->weight(), x, *g, o, job.split));
      const int64_t rows = lin->out_features(), gs = GroupSize(*g, in);
      const at::Tensor mv = cl.max_val.unsqueeze(-1);
      const at::Tensor w = lin->weight().to(at::kFloat).view({rows, in / gs, gs});
      lin->SetWeight(at::minimum(at::maximum(w, -mv), mv).view({rows, in}));
      shrink_mean[n] = cl.steps.to(at::kDouble).mean().item<double>() / o.n_grid;
    }
  }

  // 5. Every linear on the grid.
  for (const auto& n : names) {
    model::Linear* lin = FindLinearIn(layer, n);
    const std::optional<QuantGrid> g = grid_of(n);
    if (!g) continue;  // kept in FP (scaled: the function is unchanged)
    ASSIGN_OR_RETURN(QuantizedWeight q, RtnQuantize(lin->weight(), *g));
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

Status AwqQuantizeLayer(LayerJob& job, const QuantGrid& grid, const AwqOptions& options,
                        QuantizeResult* out) {
  return AwqQuantizeLayer(
      job, [&grid](const std::string&) { return std::optional<QuantGrid>(grid); }, options, out);
}

Status AwqQuantizeLayer(LayerJob& job, const LinearGridOf& grid_of, const AwqOptions& options,
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
                       x.defined() ? ShapeString(x.sizes()) : std::string("an undefined tensor")));
    }
  }
  RETURN_IF_ERROR(ValidateOptions(options));
  const LinearGridOf min_max = [&grid_of](const std::string& n) {
    std::optional<QuantGrid> g = grid_of(n);
    if (g) g->kind = GridKind::kMinMax;
    return g;
  };
  try {
    return QuantizeLayerImpl(job, min_max, options, out);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(job.prefix, "AWQ: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(job.prefix, "AWQ: ", e.what()));
  }
}

}  // namespace bitsweep::quant
