// The Qwen3 layer shapes the benchmarks build their random models with. Header-only.
#pragma once

#include <cstdint>
#include <string>

#include "model/tiny_model.h"

namespace bitsweep::bench {

// `layers` decoder layers with Qwen3-8B's shapes for "8b" (hidden 4096, intermediate 12288, 32
// query and 8 kv heads), else Qwen3-0.6B's (hidden 1024, intermediate 3072, 16 query and 8 kv
// heads); head_dim 128 either way. Other fields keep TinyModelOptions' defaults.
inline model::TinyModelOptions Qwen3LayerShapes(const std::string& name, int64_t layers) {
  model::TinyModelOptions o;
  o.num_layers = layers;
  o.head_dim = 128;
  if (name == "8b") {
    o.hidden_size = 4096, o.intermediate_size = 12288, o.num_heads = 32, o.num_kv_heads = 8;
  } else {
    o.hidden_size = 1024, o.intermediate_size = 3072, o.num_heads = 16, o.num_kv_heads = 8;
  }
  return o;
}

}  // namespace bitsweep::bench
