#include "quant/billm.h"

namespace bitsweep::quant {

StatusOr<BillmResult> BillmQuantize(const at::Tensor&, const at::Tensor&, const BillmOptions&) {
  return absl::UnimplementedError("BiLLM is not implemented yet");
}

Status BillmQuantizeLayer(LayerJob&, const BillmOptions&, QuantizeResult*) {
  return absl::UnimplementedError("BiLLM is not implemented yet");
}

}  // namespace bitsweep::quant
