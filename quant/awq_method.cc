// The "awq" row of common/catalog.cc bound to AwqQuantizeLayer (quant/awq.h): its typed options
// and its recipe block.
#include <memory>
#include <nlohmann/json.hpp>

#include "quant/awq.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

class AwqMethod : public QuantizerWith<AwqOptions> {
 public:
  using QuantizerWith::QuantizerWith;

  Status Validate(const model::Qwen3Config& config) const override {
    if (!(options().max_shrink < 1)) {
      return absl::InvalidArgumentError("awq max_shrink must lie in [0, 1)");
    }
    return Quantizer::Validate(config);
  }

  // AWQ's searches couple rows: under TP each layer is quantized whole.
  Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const override {
    if (!mixed()) {
      return RunOnWholeLayer(
          job, [&](LayerJob& j) { return AwqQuantizeLayer(j, grid(), options(), out); });
    }
    const int64_t layer = job.index;
    const LinearGridOf grid_of = [this, layer](const std::string& n) { return LinearGrid(layer, n); };
    return RunOnWholeLayer(
        job, [&](LayerJob& j) { return AwqQuantizeLayer(j, grid_of, options(), out); });
  }

  nlohmann::json Recipe() const override {
    const AwqOptions& a = options();
    return {{"n_grid", a.n_grid},
            {"duo_scaling", a.duo_scaling},
            {"clip", a.clip},
            {"max_shrink", a.max_shrink},
            {"clip_tokens", a.clip_tokens},
            {"scale_v_to_o", a.scale_v_to_o}};
  }
};

}  // namespace

StatusOr<QuantizerPtr> MakeAwqQuantizer(const MethodInfo& row, const QuantConfig& config) {
  AwqOptions a;
  a.n_grid = static_cast<int>(OptionInt(config.options, "awq_n_grid"));
  a.duo_scaling = OptionBool(config.options, "awq_duo_scaling");
  a.clip = !OptionBool(config.options, "awq_no_clip");
  a.max_shrink = OptionDouble(config.options, "awq_max_shrink");
  a.clip_tokens = OptionInt(config.options, "awq_clip_tokens");
  a.scale_v_to_o = !OptionBool(config.options, "released_code");
  return QuantizerPtr(new AwqMethod(row, config, ConfigGrid(config, GridKind::kMinMax), a));
}

}  // namespace bitsweep::quant
