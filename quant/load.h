// Loads any model folder bitsweep writes, for evaluation: a plain (or dequantized) Hugging Face
// folder, the packed GPTQ-layout folder (config.json "quantization_config" with quant_method
// "gptq": every linear with a qweight is dequantized at load), and, when the folder's
// quantization_config.json records SmoothQuant activation bits, the per-token activation
// quantisation installed as Linear hooks (the model then runs W{w}A{a} as the method defines).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "model/qwen3.h"

namespace bitsweep::quant {

struct LoadedModel {
  std::unique_ptr<model::Qwen3Model> model;
  // What the loader applied, e.g. "packed gptq 4-bit (168 linears)" or "activation quantization
  // a8 per token"; empty for a plain folder.
  std::string description;
};

StatusOr<LoadedModel> LoadModelForEval(const std::string& dir,
                                       const model::LoadOptions& options = {});

}  // namespace bitsweep::quant
