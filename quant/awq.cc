#include "quant/awq.h"

namespace bitsweep::quant {

Status AwqQuantizeLayer(LayerJob&, const QuantGrid&, const AwqOptions&, QuantizeResult*) {
  return absl::UnimplementedError("AWQ is not implemented yet");
}

}  // namespace bitsweep::quant
