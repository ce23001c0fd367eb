#include "quant/quantize_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "quant/rtn.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

double SquaredError(const at::Tensor& w, const at::Tensor& q) {
  return (w.to(at::kFloat) - q).pow(2).sum().item<double>();
}

StatusOr<LinearReport> QuantizeRtn(const model::Collective& tp, model::Linear& lin,
                                   const std::string& name, const QuantGrid& grid,
                                   QuantizeResult* out) {
  double error = 0;
  ASSIGN_OR_RETURN(
      QuantizedWeight q,
      QuantizeRowsSharded(tp, lin, [&](const at::Tensor& rows) -> StatusOr<QuantizedWeight> {
        ASSIGN_OR_RETURN(QuantizedWeight piece, RtnQuantize(rows, grid));
        error = SquaredError(rows, piece.Dequantize());
        return piece;
      }));
  LinearReport r{name, SumOverRanks(tp, error), -1, "", {}};
  out->weights.emplace(name, std::move(q));
  return r;
}

Status RunGptqLayer(LayerJob& job, const QuantizeOptions& o, QuantizeResult* out) {
  model::Qwen3Model& m = *job.model;
  const int64_t i = job.index;
  std::vector<at::Tensor>& xs = *job.xs;
  const model::RopeTables& rope = *job.rope;
  model::DecoderLayer& layer = m.layer(i);
  const std::string& prefix = job.prefix;
  for (const auto& group : model::SequentialGroups(layer, o.true_sequential)) {
    ASSIGN_OR_RETURN(LayerHessians lh, CollectHessians(job, group));
    for (size_t k = 0; k < group.size(); ++k) {
      model::Linear& lin = *lh.linears[k];
      const std::string name = prefix + group[k];
      if (lh.tokens[k] < job.min_expert_tokens && group[k].find("experts.") != std::string::npos) {
        ASSIGN_OR_RETURN(LinearReport r, QuantizeRtn(*m.tp(), lin, name, o.grid, out));
        r.calib_tokens = lh.tokens[k];
        r.note = absl::StrCat("fallback to RTN: ", lh.tokens[k], " calibration tokens (< ",
                              o.min_expert_tokens, ")");
        out->linears.push_back(r);
        continue;
      }
      GptqOptions g = o.gptq;
      g.grid = o.grid;
      // Rows are independent given H: under TP each rank runs GPTQ on its share of the rows.
      double loss = 0;
      const at::Tensor& H = lh.h[k]->H();
      ASSIGN_OR_RETURN(QuantizedWeight q,
                       QuantizeRowsSharded(
                           *m.tp(), lin, [&](const at::Tensor& rows) -> StatusOr<QuantizedWeight> {
                             ASSIGN_OR_RETURN(GptqResult r, GptqQuantize(rows, H, g));
                             loss = r.loss;
                             return std::move(r.weight);
                           }));
      lh.h[k].reset();
      out->linears.push_back({name, SumOverRanks(*m.tp(), loss), lh.tokens[k], "", {}});
      out->weights.emplace(name, std::move(q));
    }
  }
  for (at::Tensor& x : xs) x = m.RunLayer(i, x, rope);
  return absl::OkStatus();
}

}  // namespace

StatusOr<Method> ParseMethod(const std::string& name) {
  if (name == "rtn") return Method::kRtn;
  if (name == "gptq") return Method::kGptq;
  if (name == "awq") return Method::kAwq;
  if (name == "smoothquant") return Method::kSmoothQuant;
  if (name == "billm") return Method::kBillm;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown method \"", name, "\" (supported: rtn, gptq, awq, smoothquant, billm)"));
}

const char* MethodName(Method m) {
  switch (m) {
    case Method::kRtn:
      return "rtn";
    case Method::kGptq:
      return "gptq";
    case Method::kAwq:
      return "awq";
    case Method::kSmoothQuant:
      return "smoothquant";
    case Method::kBillm:
      return "billm";
  }
  return "?";
}

static bool NeedsCalibration(const QuantizeOptions& o) {
  switch (o.method) {
    case Method::kRtn:
      return false;
    case Method::kSmoothQuant:
      return o.smoothquant.smooth && !o.released_code;
    default:
      return true;
  }
}

QuantizeOptions NormalizedOptions(const QuantizeOptions& options) {
  QuantizeOptions o = options;
  switch (o.method) {
    case Method::kAwq:
      o.grid.kind = GridKind::kMinMax;
      break;
    case Method::kSmoothQuant:
      o.grid.kind = GridKind::kSymAbsMax;
      o.grid.group_size = -1;
      break;
    default:
      o.grid.kind = GridKind::kMinMaxWithZero;
      break;
  }
  if (o.method == Method::kBillm) {
    o.grid.bits = 1;
    o.grid.group_size = o.billm.blocksize;
  }
  if (o.released_code) {
    if (o.method == Method::kRtn) o.grid.group_size = -1;
    o.awq.scale_v_to_o = false;
    o.smoothquant.smooth = false;
  }
  return o;
}

Status ValidateQuantizeOptions(const model::Qwen3Config& config, const QuantizeOptions& options) {
  const QuantizeOptions o = NormalizedOptions(options);
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError(m); };
  switch (o.method) {
    case Method::kSmoothQuant:
      if (o.smoothquant.abits < 2 || o.smoothquant.abits > 8) {
        return bad(absl::StrCat("abits = ", o.smoothquant.abits, " is outside 2..8"));
      }
      if (!(o.smoothquant.alpha >= 0 && o.smoothquant.alpha <= 1)) {
        return bad(absl::StrCat("alpha = ", o.smoothquant.alpha, " is outside [0, 1]"));
      }
      break;
    case Method::kAwq:
      if (o.awq.n_grid < 1) return bad("awq n_grid must be at least 1");
      if (!(o.awq.max_shrink >= 0 && o.awq.max_shrink < 1)) {
        return bad("awq max_shrink must lie in [0, 1)");
      }
      if (o.awq.clip_tokens < 1) return bad("awq clip_tokens must be positive");
      break;
    case Method::kBillm:
      if (o.billm.blocksize < 1) return bad("billm blocksize must be positive");
      if (o.billm.up_lim < 2) return bad("billm up_lim must be at least 2");
      if (!(o.billm.percdamp >= 0)) return bad("percdamp must be non-negative");
      return absl::OkStatus();  // BiLLM's blocks need not divide in_features
    case Method::kGptq:
      if (o.gptq.blocksize < 1) return bad("blocksize must be positive");
      if (!(o.gptq.percdamp >= 0)) return bad("percdamp must be non-negative");
      break;
    case Method::kRtn:
      break;
  }
  // Every linear must accept the grid before any work starts.
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const auto& [name, in] : model::QuantizedLinearInFeatures(config, i)) {
      Status s = o.grid.Validate(in);
      if (!s.ok()) {
        return bad(absl::StrCat("model.layers.", i, ".", name, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

StatusOr<QuantizeResult> QuantizeModel(model::Qwen3Model& m, const CalibrationSet* calib,
                                       const QuantizeOptions& options) {
  RETURN_IF_ERROR(ValidateQuantizeOptions(m.config(), options));
  const QuantizeOptions o = NormalizedOptions(options);
  const auto start = std::chrono::steady_clock::now();
  QuantizeResult out;
  try {
    c10::InferenceMode guard;
    const bool calibrated = NeedsCalibration(o);
    if (calibrated && (calib == nullptr || calib->samples.empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat(MethodName(o.method), " needs calibration samples"));
    }
    std::vector<at::Tensor> xs;
    int64_t seqlen = 1;
    if (calibrated) {
      for (const auto& s : calib->samples) {
        if (s.size() != calib->samples.front().size()) {
          return absl::InvalidArgumentError("calibration samples must all have the same length");
        }
        for (int32_t id : s) {
          if (id < 0 || id >= m.config().vocab_size) {
            return absl::InvalidArgumentError(absl::StrCat("calibration token id ", id,
                                                           " is outside the vocabulary [0, ",
                                                           m.config().vocab_size, ")"));
          }
        }
      }
      for (const auto& s : calib->samples) {
        at::Tensor ids = at::from_blob(const_cast<int32_t*>(s.data()),
                                       {1, static_cast<int64_t>(s.size())}, at::kInt)
                             .to(at::kLong);
        xs.push_back(m.Embed(ids));
      }
      seqlen = xs.front().size(1);
    }
    const model::RopeTables rope = m.MakeRope(seqlen);
    for (int64_t i = 0; i < m.num_layers(); ++i) {
      RETURN_IF_ERROR(m.MaterializeLayer(i));
      LayerJob job;
      job.model = &m;
      job.index = i;
      job.prefix = absl::StrCat("model.layers.", i, ".");
      job.xs = &xs;
      job.rope = &rope;
      job.min_expert_tokens = o.min_expert_tokens;
      switch (o.method) {
        case Method::kRtn:
          for (const auto& name : model::QuantizedLinears(m.layer(i))) {
            ASSIGN_OR_RETURN(LinearReport r, QuantizeRtn(*m.tp(), *FindLinearIn(m.layer(i), name),
                                                         job.prefix + name, o.grid, &out));
            out.linears.push_back(r);
          }
          break;
        case Method::kGptq:
          RETURN_IF_ERROR(RunGptqLayer(job, o, &out));
          break;
        // AWQ's and BiLLM's searches couple rows: under TP each layer is quantized whole
        // (quant/tensor_parallel.h). SmoothQuant reduces its statistics across ranks itself.
        case Method::kAwq:
          RETURN_IF_ERROR(RunOnWholeLayer(
              job, [&](LayerJob& j) { return AwqQuantizeLayer(j, o.grid, o.awq, &out); }));
          break;
        case Method::kSmoothQuant:
          RETURN_IF_ERROR(SmoothQuantLayer(job, o.grid.bits, o.smoothquant, &out));
          break;
        case Method::kBillm:
          RETURN_IF_ERROR(RunOnWholeLayer(
              job, [&](LayerJob& j) { return BillmQuantizeLayer(j, o.billm, &out); }));
          break;
      }
      if (o.layer_sink) {
        std::map<std::string, QuantizedWeight> layer_weights;
        for (auto it = out.weights.lower_bound(job.prefix);
             it != out.weights.end() && it->first.rfind(job.prefix, 0) == 0;) {
          layer_weights.insert(out.weights.extract(it++));
        }
        RETURN_IF_ERROR(o.layer_sink(i, layer_weights));
        m.ReleaseLayer(i);
      }
      if (o.progress) o.progress(i + 1, m.num_layers());
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("quantization: ", e.what_without_backtrace()));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace bitsweep::quant
