// The released Qwen3 models' shapes (their Hugging Face config.json files), for benchmarks,
// memory plans and tests that need the real sizes without the weights.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "model/qwen3_config.h"

namespace bitsweep::model {

// "Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B", "Qwen3-14B", "Qwen3-32B",
// "Qwen3-30B-A3B"; NOT_FOUND listing them otherwise.
StatusOr<Qwen3Config> ReleasedQwen3Config(const std::string& name);
std::vector<std::string> ReleasedQwen3Names();

}  // namespace bitsweep::model
