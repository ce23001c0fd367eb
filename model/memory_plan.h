// Resident or layer-streamed: whether a model is held whole for evaluation or read one decoder
// layer at a time (LoadOptions::lazy_layers + lazy_globals, Qwen3Model::RunLayers), chosen from
// a memory budget. Pure arithmetic over the config; the numbers are estimates of the tensors'
// bytes in the compute dtype, not of the allocator's overhead.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "model/qwen3.h"
#include "model/qwen3_config.h"

namespace bitsweep::model {

struct MemoryPlan {
  bool streamed = false;
  // Streamed on CUDA with room for two layers: layer i + 1 is copied while layer i runs
  // (LoadOptions::prefetch_layers).
  bool prefetch = false;
  int64_t budget_bytes = 0;    // what the plan had to fit
  int64_t resident_bytes = 0;  // every weight in the compute dtype (this rank's share)
  int64_t layer_bytes = 0;     // the largest decoder layer in the compute dtype
  int64_t scoring_bytes = 0;   // logits of one scoring chunk plus one converted lm_head chunk
  // Bytes left for activations (the hidden states that travel through the layers together).
  int64_t activation_bytes = 0;
  std::string reason;          // one sentence: what was compared
};

// Bytes of decoder layer i's weights in `dtype`, and of all weights (tied embeddings once),
// divided among `world` tensor-parallel ranks.
int64_t LayerBytes(const Qwen3Config& c, int64_t i, ComputeDType dtype, int world = 1);
int64_t ModelBytes(const Qwen3Config& c, ComputeDType dtype, int world = 1);

// Resident when the whole model plus one scoring chunk fits `budget_bytes`, otherwise
// streamed; RESOURCE_EXHAUSTED naming the layer's size when not even one layer and a scoring
// chunk fit. `budget_source` names where the budget came from ("--max-memory",
// "available memory") for the reason and the error. With `cuda`, a streamed plan prefetches
// when two layers and scoring fit (the activations then get what is left after two layers).
StatusOr<MemoryPlan> PlanModelMemory(const Qwen3Config& c, ComputeDType dtype, int world,
                                     int64_t budget_bytes, const std::string& budget_source,
                                     bool cuda = false);

}  // namespace bitsweep::model
