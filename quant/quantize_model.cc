#include "quant/quantize_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/qwen3.h"
#include "quant/rtn.h"

namespace bitsweep::quant {
namespace {

double SquaredError(const at::Tensor& w, const at::Tensor& q) {
  return (w.to(at::kFloat) - q).pow(2).sum().item<double>();
}

StatusOr<LinearReport> QuantizeRtn(model::Linear& lin, const std::string& name,
                                   const QuantGrid& grid, QuantizeResult* out) {
  ASSIGN_OR_RETURN(QuantizedWeight q, RtnQuantize(lin.weight(), grid));
  at::Tensor deq = q.Dequantize();
  LinearReport r{name, SquaredError(lin.weight(), deq), -1, ""};
  lin.SetWeight(deq);
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
    std::vector<std::unique_ptr<HessianAccumulator>> hs;
    std::vector<int64_t> tokens(group.size(), 0);
    std::vector<model::Linear*> lins;
    for (size_t k = 0; k < group.size(); ++k) {
      model::Linear* lin = FindLinearIn(layer, group[k]);
      if (lin == nullptr) return absl::InternalError("no linear " + group[k]);
      lins.push_back(lin);
      hs.push_back(std::make_unique<HessianAccumulator>(lin->in_features()));
      HessianAccumulator* h = hs.back().get();
      int64_t* count = &tokens[k];
      lin->SetInputHook([h, count](const at::Tensor& x) {
        h->Add(x, 1);
        *count += x.numel() / x.size(-1);
        return x;
      });
    }
    for (const at::Tensor& x : xs) (void)m.RunLayer(i, x, rope);
    for (size_t k = 0; k < group.size(); ++k) {
      model::Linear& lin = *lins[k];
      lin.SetInputHook(nullptr);
      const std::string name = prefix + group[k];
      if (tokens[k] < job.min_expert_tokens && group[k].find("experts.") != std::string::npos) {
        ASSIGN_OR_RETURN(LinearReport r, QuantizeRtn(lin, name, o.grid, out));
        r.calib_tokens = tokens[k];
        r.note = absl::StrCat("fallback to RTN: ", tokens[k], " calibration tokens (< ",
                              o.min_expert_tokens, ")");
        out->linears.push_back(r);
        continue;
      }
      GptqOptions g = o.gptq;
      g.grid = o.grid;
      ASSIGN_OR_RETURN(GptqResult q, GptqQuantize(lin.weight(), hs[k]->H(), g));
      lin.SetWeight(q.weight.Dequantize());
      out->linears.push_back({name, q.loss, tokens[k], ""});
      out->weights.emplace(name, std::move(q.weight));
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
    case Method::kRtn: return "rtn";
    case Method::kGptq: return "gptq";
    case Method::kAwq: return "awq";
    case Method::kSmoothQuant: return "smoothquant";
    case Method::kBillm: return "billm";
  }
  return "?";
}

static bool NeedsCalibration(const QuantizeOptions& o) {
  switch (o.method) {
    case Method::kRtn: return false;
    case Method::kSmoothQuant: return o.smoothquant.smooth && !o.released_code;
    default: return true;
  }
}

StatusOr<QuantizeResult> QuantizeModel(model::Qwen3Model& m, const CalibrationSet* calib,
                                       const QuantizeOptions& options) {
  QuantizeOptions o = options;
  switch (o.method) {
    case Method::kAwq: o.grid.kind = GridKind::kMinMax; break;
    case Method::kSmoothQuant:
      o.grid.kind = GridKind::kSymAbsMax;
      o.grid.group_size = -1;
      break;
    default: o.grid.kind = GridKind::kMinMaxWithZero; break;
  }
  if (o.released_code) {
    if (o.method == Method::kRtn) o.grid.group_size = -1;
    o.awq.scale_v_to_o = false;
    o.smoothquant.smooth = false;
  }
  const auto start = std::chrono::steady_clock::now();
  QuantizeResult out;
  try {
    c10::InferenceMode guard;
    // Every linear must accept the grid before any work starts (BiLLM has its own format).
    if (o.method != Method::kBillm) {
      for (int64_t i = 0; i < m.num_layers(); ++i) {
        for (const auto& name : model::QuantizedLinears(m.layer(i))) {
          Status s = o.grid.Validate(FindLinearIn(m.layer(i), name)->in_features());
          if (!s.ok()) {
            return absl::InvalidArgumentError(
                absl::StrCat("model.layers.", i, ".", name, ": ", s.message()));
          }
        }
      }
    }
    if (o.method == Method::kRtn) {
      for (int64_t i = 0; i < m.num_layers(); ++i) {
        for (const auto& name : model::QuantizedLinears(m.layer(i))) {
          ASSIGN_OR_RETURN(LinearReport r,
                           QuantizeRtn(*FindLinearIn(m.layer(i), name),
                                       absl::StrCat("model.layers.", i, ".", name), o.grid, &out));
          out.linears.push_back(r);
        }
        if (o.progress) o.progress(i + 1, m.num_layers());
      }
    } else {
      const bool calibrated = NeedsCalibration(o);
      if (calibrated && (calib == nullptr || calib->samples.empty())) {
        return absl::InvalidArgumentError(
            absl::StrCat(MethodName(o.method), " needs calibration samples"));
      }
      std::vector<at::Tensor> xs;
      int64_t seqlen = 1;
      if (calibrated) {
        for (const auto& s : calib->samples) {
          at::Tensor ids = at::from_blob(const_cast<int32_t*>(s.data()),
                                         {1, static_cast<int64_t>(s.size())}, at::kInt)
                               .to(at::kLong);
          xs.push_back(m.Embed(ids));
        }
        seqlen = xs.front().size(1);
        for (const auto& x : xs) {
          if (x.size(1) != seqlen) {
            return absl::InvalidArgumentError(
                "calibration samples must all have the same length");
          }
        }
      }
      const model::RopeTables rope = m.MakeRope(seqlen);
      for (int64_t i = 0; i < m.num_layers(); ++i) {
        LayerJob job;
        job.model = &m;
        job.index = i;
        job.prefix = absl::StrCat("model.layers.", i, ".");
        job.xs = &xs;
        job.rope = &rope;
        job.min_expert_tokens = o.min_expert_tokens;
        switch (o.method) {
          case Method::kGptq: RETURN_IF_ERROR(RunGptqLayer(job, o, &out)); break;
          case Method::kAwq: RETURN_IF_ERROR(AwqQuantizeLayer(job, o.grid, o.awq, &out)); break;
          case Method::kSmoothQuant:
            RETURN_IF_ERROR(SmoothQuantLayer(job, o.grid.bits, o.smoothquant, &out));
            break;
          case Method::kBillm: RETURN_IF_ERROR(BillmQuantizeLayer(job, o.billm, &out)); break;
          case Method::kRtn: break;
        }
        if (o.progress) o.progress(i + 1, m.num_layers());
      }
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("quantization: ", e.what_without_backtrace()));
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace bitsweep::quant
