// Writes a quantized model as a Hugging Face folder any Qwen3 loader runs: dequantized weights
// (safetensors in the source checkpoint's stored dtype), config.json, the tokenizer files, and
// quantization_config.json with every parameter needed to reproduce it plus per-linear losses.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "common/status.h"
#include "quant/quantize_model.h"

namespace bitsweep::model {
class Qwen3Model;
}

namespace bitsweep::quant {

// `recipe` is the reproducibility record (method, bits, group, calibration, seed, version...);
// the losses of `result` are appended under "linears".
Status WriteQuantizedModel(const std::string& out_dir, const std::string& source_dir,
                           const model::Qwen3Model& model, const QuantizeResult& result,
                           const nlohmann::json& recipe);

}  // namespace bitsweep::quant
