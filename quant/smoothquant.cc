// SmoothQuant, docs/methods.md#smoothquant (the algorithm) and docs/methods.md#released-code (what
// the study runs). Sources: mit-han-lab/smoothquant calibration.py get_act_scales (hooks on every
// nn.Linear input: max over tokens of |x|, per channel, kept in fp32), smooth.py
// smooth_ln_fcs_llama_like and smooth_lm (Llama: input_layernorm -> q,k,v with q_proj's act scales;
// post_attention_layernorm -> gate,up with gate_proj's; Mixtral: post_attention_layernorm ->
// [router, experts' w1, w3] with the router's act scales), fake_quant.py (W8A8Linear: per-channel
// abs-max weights, dynamic per-token abs-max inputs, q/k/v outputs too when quantize_bmm_input).
//
// Numerics: upstream casts act_scales to the weight dtype and computes w_max, s and the
// in-place div_/mul_ in that dtype (fp16 on its GPU runs). We compute w_max and s in fp32 and
// round only the rescaled norm and weights back to the model's dtype: identical in fp32,
// at most one rounding step apart per element in bf16.
#include "quant/smoothquant.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "quant/rtn.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

// smooth.py and fake_quant.py clamp every max from below by this.
constexpr double kMinScale = 1e-5;
constexpr int kMinBits = 2;  // a 1-bit symmetric grid has the single level 0
constexpr int kMaxBits = 8;

Status ValidateAlpha(double alpha) {
  if (!(alpha >= 0.0 && alpha <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SmoothQuant alpha = ", alpha, " is out of range 0..1"));
  }
  return absl::OkStatus();
}

// The norm weight a kNorm group's `prev` names (ScalingGroups' "input_layernorm" /
// "post_attention_layernorm"), or nullptr.
at::Tensor* NormIn(model::DecoderLayer& layer, const std::string& name) {
  if (name == "input_layernorm") return &layer.input_layernorm;
  if (name == "post_attention_layernorm") return &layer.post_attention_layernorm;
  return nullptr;
}

std::vector<model::ScalingGroup> NormGroups(const model::Qwen3Model& m, int64_t i) {
  const auto& c = m.config();
  std::vector<model::ScalingGroup> out;
  for (auto& g :
       model::ScalingGroups(m.layer(i), c.num_attention_heads, c.num_key_value_heads, c.head_dim)) {
    if (g.prev_kind == model::ScalingGroup::PrevKind::kNorm) out.push_back(std::move(g));
  }
  return out;
}

double SquaredError(const at::Tensor& w, const at::Tensor& q) {
  return (w.to(at::kFloat) - q).pow(2).sum().item<double>();
}

// `tp` (may be null): the tensor-parallel group the layer's linears are sharded over.
Status SmoothLayerImpl(model::DecoderLayer& layer, const std::vector<model::ScalingGroup>& groups,
                       const std::map<std::string, at::Tensor>& act_max, double alpha,
                       std::map<std::string, at::Tensor>* applied,
                       const model::Collective* tp = nullptr) {
  // Resolve and check everything first so that an error leaves the layer untouched.
  struct Resolved {
    at::Tensor* norm;
    std::vector<model::Linear*> fcs;  // linears then also_scaled
    at::Tensor act;
    const model::ScalingGroup* group;
  };
  std::vector<Resolved> todo;
  for (const auto& g : groups) {
    if (g.prev_kind != model::ScalingGroup::PrevKind::kNorm) continue;
    Resolved r{NormIn(layer, g.prev), {}, {}, &g};
    if (r.norm == nullptr) return absl::NotFoundError("SmoothLayer: no norm named " + g.prev);
    for (const auto* names : {&g.linears, &g.also_scaled}) {
      for (const auto& name : *names) {
        model::Linear* lin = FindLinearIn(layer, name);
        if (lin == nullptr) return absl::NotFoundError("SmoothLayer: no linear named " + name);
        if (lin->in_features() != r.norm->numel()) {
          return absl::InvalidArgumentError(
              absl::StrCat("SmoothLayer: ", name, " has ", lin->in_features(),
                           " input features but ", g.prev, " has ", r.norm->numel(), " channels"));
        }
        r.fcs.push_back(lin);
      }
    }
    auto it = act_max.find(g.input_of);
    if (it == act_max.end() || !it->second.defined()) {
      return absl::InvalidArgumentError("SmoothLayer: act_max has no entry for " + g.input_of);
    }
    const at::Tensor a = it->second.to(at::kFloat);
    if (a.dim() != 1 || a.numel() != r.norm->numel()) {
      return absl::InvalidArgumentError(
          absl::StrCat("SmoothLayer: act_max[", g.input_of, "] must be [", r.norm->numel(), "]"));
    }
    if (!at::isfinite(a).all().item<bool>() || a.lt(0).any().item<bool>()) {
      return absl::InvalidArgumentError(absl::StrCat("SmoothLayer: act_max[", g.input_of,
                                                     "] has negative or non-finite entries"));
    }
    r.act = a;
    todo.push_back(std::move(r));
  }
  for (Resolved& r : todo) {
    // weight_scales = cat([fc.weight.abs().max(dim=0)]).max(dim=0) over every fc of the group.
    at::Tensor w_max;
    for (model::Linear* lin : r.fcs) {
      at::Tensor m = lin->weight().abs().amax(0).to(at::kFloat);
      w_max = w_max.defined() ? at::maximum(w_max, m) : m;
    }
    // Column-parallel linears hold some of the rows: the maximum over all of them is global.
    if (tp != nullptr && tp->world_size() > 1) tp->AllReduceMax(w_max);
    const at::Tensor s = SmoothingScales(r.act, w_max, alpha);
    *r.norm = (r.norm->to(at::kFloat) / s).to(r.norm->scalar_type());
    for (model::Linear* lin : r.fcs) lin->SetWeight(lin->weight().to(at::kFloat) * s.view({1, -1}));
    if (applied != nullptr) (*applied)[r.group->prev] = s;
  }
  return absl::OkStatus();
}

Status SmoothQuantLayerImpl(LayerJob& job, const std::function<int(const std::string&)>& wbits_of,
                            const SmoothQuantOptions& options, QuantizeResult* out) {
  model::Qwen3Model& m = *job.model;
  const int64_t i = job.index;
  model::DecoderLayer& layer = m.layer(i);
  std::vector<at::Tensor>& xs = *job.xs;
  const std::vector<model::ScalingGroup> groups = NormGroups(m, i);

  // Calibration (smoothing only): one FP forward records max_t |x| per input channel of each
  // group's input linear; its outputs are the FP layer's outputs, the next layer's inputs.
  std::map<std::string, at::Tensor> act_max;
  std::map<std::string, int64_t> tokens;
  std::map<std::string, int64_t> group_tokens;  // by quantized linear name
  if (options.smooth) {
    std::vector<model::Linear*> hooked;
    for (const auto& g : groups) {
      model::Linear* lin = FindLinearIn(layer, g.input_of);
      if (lin == nullptr) return absl::NotFoundError("SmoothQuant: no linear " + g.input_of);
      at::Tensor* slot = &act_max[g.input_of];
      int64_t* count = &tokens[g.input_of];
      lin->SetInputHook([slot, count](const at::Tensor& x) {
        const int64_t c = x.size(-1);
        at::Tensor mx = x.abs().reshape({-1, c}).amax(0).to(at::kFloat);
        *slot = slot->defined() ? at::maximum(*slot, mx) : mx;
        *count += x.numel() / c;
        return x;
      });
      hooked.push_back(lin);
    }
    try {
      for (at::Tensor& x : xs) x = m.RunLayer(i, x, *job.rope);
    } catch (...) {
      for (model::Linear* lin : hooked) lin->SetInputHook(nullptr);
      throw;
    }
    for (model::Linear* lin : hooked) lin->SetInputHook(nullptr);
    RETURN_IF_ERROR(SmoothLayerImpl(layer, groups, act_max, options.alpha, nullptr, m.tp().get()));
    for (const auto& g : groups) {
      for (const auto& name : g.linears) group_tokens[name] = tokens[g.input_of];
    }
  } else {
    // The released code: nothing to calibrate; keep the FP propagation when inputs exist.
    for (at::Tensor& x : xs) x = m.RunLayer(i, x, *job.rope);
  }

  for (const auto& name : model::QuantizedLinears(layer)) {
    model::Linear* lin = FindLinearIn(layer, name);
    if (lin == nullptr) return absl::NotFoundError("SmoothQuant: no linear " + name);
    QuantGrid grid;
    grid.bits = wbits_of(name);
    grid.group_size = -1;
    grid.kind = GridKind::kSymAbsMax;
    if (grid.bits < kMinBits || grid.bits > kMaxBits) {
      return absl::InvalidArgumentError(absl::StrCat("SmoothQuant wbits = ", grid.bits, " of ",
                                                     name, " is out of range ", kMinBits, "..",
                                                     kMaxBits));
    }
    // Per output channel: row-local, so under TP each rank quantizes its share of the rows.
    double error = 0;
    ASSIGN_OR_RETURN(QuantizedWeight q,
                     QuantizeRowsSharded(
                         *m.tp(), *lin, [&](const at::Tensor& rows) -> StatusOr<QuantizedWeight> {
                           ASSIGN_OR_RETURN(QuantizedWeight p, RtnQuantize(rows, grid));
                           error = SquaredError(rows, p.Dequantize());
                           return p;
                         }));
    const std::string full = job.prefix + name;
    auto t = group_tokens.find(name);
    const bool smoothed = t != group_tokens.end();
    LinearReport r;
    r.name = full;
    r.loss = SumOverRanks(*m.tp(), error);
    r.calib_tokens = smoothed ? t->second : -1;
    r.stats = {{"alpha", options.alpha}, {"smoothed", smoothed ? 1.0 : 0.0}};
    out->linears.push_back(std::move(r));
    out->weights.insert_or_assign(full, std::move(q));
  }
  return absl::OkStatus();
}

}  // namespace

at::Tensor SmoothingScales(const at::Tensor& act_max, const at::Tensor& w_max, double alpha) {
  TORCH_CHECK(act_max.sizes().equals(w_max.sizes()), "SmoothingScales: act_max ", act_max.sizes(),
              " and w_max ", w_max.sizes(), " differ");
  const at::Tensor a = act_max.to(at::kFloat);
  const at::Tensor w = w_max.to(at::kFloat).clamp_min(kMinScale);
  return (a.pow(alpha) / w.pow(1.0 - alpha)).clamp_min(kMinScale);
}

Status SmoothLayer(model::DecoderLayer& layer, const std::vector<model::ScalingGroup>& groups,
                   const std::map<std::string, at::Tensor>& act_max, double alpha,
                   std::map<std::string, at::Tensor>* applied) {
  RETURN_IF_ERROR(ValidateAlpha(alpha));
  try {
    return SmoothLayerImpl(layer, groups, act_max, alpha, applied);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("SmoothLayer: ", e.what_without_backtrace()));
  }
}

Status SmoothQuantLayer(LayerJob& job, int wbits, const SmoothQuantOptions& options,
                        QuantizeResult* out) {
  // The per-linear form checks the job and the options.
  if (wbits < kMinBits || wbits > kMaxBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("SmoothQuant wbits = ", wbits, " is out of range ", kMinBits, "..", kMaxBits));
  }
  return SmoothQuantLayer(
      job, [wbits](const std::string&) { return wbits; }, options, out);
}

Status SmoothQuantLayer(LayerJob& job, const std::function<int(const std::string&)>& wbits_of,
                        const SmoothQuantOptions& options, QuantizeResult* out) {
  if (job.model == nullptr || job.xs == nullptr || job.rope == nullptr || out == nullptr) {
    return absl::InvalidArgumentError(
        "SmoothQuantLayer: job.model, job.xs, job.rope and out must be set");
  }
  if (job.index < 0 || job.index >= job.model->num_layers()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SmoothQuantLayer: job.index = ", job.index, " is not a layer"));
  }
  RETURN_IF_ERROR(ValidateAlpha(options.alpha));
  if (options.smooth && job.xs->empty()) {
    return absl::InvalidArgumentError(
        "SmoothQuantLayer: smoothing needs calibration inputs (job.xs is empty)");
  }
  try {
    return SmoothQuantLayerImpl(job, wbits_of, options, out);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("SmoothQuant layer ", job.index, ": ", e.what_without_backtrace()));
  }
}

Status InstallActivationQuantization(model::Qwen3Model& model, int abits, bool qkv_output) {
  if (abits < kMinBits || abits > kMaxBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("SmoothQuant abits = ", abits, " is out of range ", kMinBits, "..", kMaxBits));
  }
  // W8A8Linear.forward: q_x = act_quant(x); y = linear(q_x, W); return output_quant(y).
  // Upstream quantises x in place, so k_proj/v_proj (gate/up) see the already quantised
  // q_proj (gate_proj) input; per-token abs-max fake quantisation is idempotent up to one
  // rounding of the scale, so quantising each linear's own copy is the same function.
  const auto quantize = [abits](const at::Tensor& x) { return FakeQuantizePerToken(x, abits); };
  // Under tensor parallelism a token's features are split over the ranks where a linear's
  // input (row-parallel) or output (column-parallel q/k/v) is sharded: the per-token abs-max is
  // then reduced over the group, so every rank quantises with the whole token's scale.
  const std::shared_ptr<const model::Collective> tp = model.tp();
  const auto quantize_split = [abits, tp](const at::Tensor& x) {
    return FakeQuantizePerToken(x, abits, tp.get());
  };
  // A setup, not a loop over today's layers: a lazy (layer-streamed) model re-reads its layers,
  // and every layer it reads must get the hooks too.
  model.AddLayerSetup([quantize, quantize_split, qkv_output](int64_t, model::DecoderLayer& layer) {
    for (const auto& name : model::QuantizedLinears(layer)) {
      model::Linear* lin = FindLinearIn(layer, name);
      TORCH_CHECK(lin != nullptr, "InstallActivationQuantization: no linear ", name);
      lin->SetInputHook(lin->style() == model::ParallelStyle::kRow
                            ? model::Linear::InputHook(quantize_split)
                            : model::Linear::InputHook(quantize));
    }
    for (model::Linear* lin : {&layer.q_proj, &layer.k_proj, &layer.v_proj}) {
      const bool split = lin->style() == model::ParallelStyle::kColumn;
      model::Linear::InputHook hook;
      if (qkv_output) hook = split ? model::Linear::InputHook(quantize_split) : quantize;
      lin->SetOutputHook(hook);
    }
  });
  return absl::OkStatus();
}

namespace {

class SmoothQuantMethod : public QuantizerWith<SmoothQuantOptions> {
 public:
  using QuantizerWith::QuantizerWith;

  // SmoothQuant reduces its statistics across tensor-parallel ranks itself.
  Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const override {
    if (!mixed()) return SmoothQuantLayer(job, grid().bits, options(), out);
    // Mixed recipe: each weight's own bits (no override keeps a linear in FP: the catalog's
    // mixed-precision rules refuse it, since every linear's activations are quantized).
    const int64_t layer = job.index;
    return SmoothQuantLayer(
        job,
        [this, layer](const std::string& name) {
          const std::optional<QuantGrid> g = LinearGrid(layer, name);
          return g ? g->bits : 0;
        },
        options(), out);
  }

  nlohmann::json Recipe() const override {
    return {{"alpha", options().alpha},
            {"smooth", options().smooth},
            {"abits", options().abits},
            {"quantize_qkv_output", options().quantize_qkv_output},
            {"activation_quantizer", "per-token symmetric abs-max, dynamic"}};
  }
};

}  // namespace

StatusOr<QuantizerPtr> MakeSmoothQuantQuantizer(const MethodInfo& row, const QuantConfig& config) {
  SmoothQuantOptions sq;
  sq.alpha = OptionDouble(config.options, "alpha");
  sq.smooth = !OptionBool(config.options, "released_code");
  sq.abits = config.abits;
  sq.quantize_qkv_output = OptionBool(config.options, "qkv_output");
  // Per channel: the row has no group size, so config.group_size is -1.
  const QuantGrid grid = ConfigGrid(config, GridKind::kSymAbsMax);
  return QuantizerPtr(new SmoothQuantMethod(row, config, grid, sq));
}

}  // namespace bitsweep::quant
