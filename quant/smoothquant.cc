#include "quant/smoothquant.h"

namespace bitsweep::quant {

Status SmoothQuantLayer(LayerJob&, int, const SmoothQuantOptions&, QuantizeResult*) {
  return absl::UnimplementedError("SmoothQuant is not implemented yet");
}

Status InstallActivationQuantization(model::Qwen3Model&, int, bool) {
  return absl::UnimplementedError("activation quantization is not implemented yet");
}

}  // namespace bitsweep::quant
