// The study's 256 C4 validation (document, token offset) pairs (docs/study-protocol.md#c4-segments,
// decoded from Efficient-ML/Qwen3-Quantization eval_my/c4_seed_{tmp,index}.pth).
#pragma once

#include <array>
#include <cstdint>
#include <utility>

namespace bitsweep::eval {

// Number of documents of en/c4-validation.00000-of-00008.json, the file the pairs index.
inline constexpr int64_t kC4ValidationShardDocs = 45576;

extern const std::array<std::pair<int32_t, int32_t>, 256> kStudyC4Segments;

}  // namespace bitsweep::eval
