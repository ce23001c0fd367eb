// Loads any model folder bitsweep writes, for evaluation: a plain (or dequantized) Hugging Face
// folder, the packed GPTQ-layout folder (config.json "quantization_config" with quant_method
// "gptq": every linear with a qweight is dequantized at load), and, when the folder's
// quantization_config.json records SmoothQuant activation bits, the per-token activation
// quantisation installed as Linear hooks (the model then runs W{w}A{a} as the method defines).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "model/memory_plan.h"
#include "model/qwen3.h"

namespace bitsweep::quant {

struct LoadedModel {
  std::unique_ptr<model::Qwen3Model> model;
  // What the loader applied, e.g. "packed gptq 4-bit (168 linears)" or "activation quantization
  // a8 per token"; empty for a plain folder.
  std::string description;
  // Resident or layer-streamed, and why (set when a memory budget was planned).
  std::optional<model::MemoryPlan> memory;
};

// `max_memory_bytes`: plan residency against this budget (0: what is free now: on a CUDA device
// its free memory, on the CPU the memory available to this
// process, common/memory.h) and load the model resident or layer-streamed
// (LoadOptions::lazy_layers and lazy_globals) accordingly; RESOURCE_EXHAUSTED naming the
// layer's size when not even one layer fits. -1: no plan, load as `options` say.
StatusOr<LoadedModel> LoadModelForEval(const std::string& dir,
                                       const model::LoadOptions& options = {},
                                       int64_t max_memory_bytes = -1);

// The plan as the JSON object `bitsweep eval --json` and job provenance report:
// {"mode": "resident"|"streamed", "prefetch", "reason", "budget_bytes", "model_bytes",
// "layer_bytes"}; "prefetch": the next layer is copied while one runs (CUDA).
std::string MemoryPlanJson(const model::MemoryPlan& plan);

}  // namespace bitsweep::quant
