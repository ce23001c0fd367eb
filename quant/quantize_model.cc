#include "quant/quantize_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"

namespace bitsweep::quant {

Status ValidateQuantizeOptions(const model::Qwen3Config& config, const QuantizeOptions& options) {
  if (options.method == nullptr) {
    return absl::InvalidArgumentError("QuantizeOptions.method: no method (MakeQuantizer)");
  }
  return options.method->Validate(config);
}

StatusOr<QuantizeResult> QuantizeModel(model::Qwen3Model& m, const CalibrationSet* calib,
                                       const QuantizeOptions& options) {
  RETURN_IF_ERROR(ValidateQuantizeOptions(m.config(), options));
  const QuantizeOptions& o = options;
  const Quantizer& method = *o.method;
  const auto start = std::chrono::steady_clock::now();
  QuantizeResult out;
  try {
    c10::InferenceMode guard;
    const bool calibrated = method.calibrated();
    if (calibrated && (calib == nullptr || calib->samples.empty())) {
      return absl::InvalidArgumentError(
          absl::StrCat(method.row().name, " needs calibration samples"));
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
      m.PrefetchLayer(i + 1);  // read while this layer is quantized (LoadOptions::prefetch_layers)
      LayerJob job;
      job.model = &m;
      job.index = i;
      job.prefix = absl::StrCat("model.layers.", i, ".");
      job.xs = &xs;
      job.rope = &rope;
      job.min_expert_tokens = o.min_expert_tokens;
      RETURN_IF_ERROR(method.QuantizeLayer(job, &out));
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
