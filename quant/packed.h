// The packed integer form of a quantized weight, in the GPTQ checkpoint layout that AutoGPTQ,
// GPTQModel and Hugging Face's GPTQ integration read (checkpoint_format "gptq", i.e. v1):
//   qweight  int32 [in * bits / 32, out]   codes of W^T packed along the input dimension
//   qzeros   int32 [n_groups, out * bits / 32]  (zero point - 1) packed along the output dim
//   scales   fp16  [n_groups, out]
//   g_idx    int32 [in]                     group of every input column
// Packing is a little-endian bit stream per 32-bit word run: value k of a run occupies bits
// [bits*k, bits*k + bits), so 2/4/8-bit values never straddle words and 3-bit runs of 32 values
// fill 3 words exactly as AutoGPTQ's pack() does.
//
// v1 stores zero - 1. A zero point of 0 then wraps: AutoGPTQ writes the two's complement bits,
// which its own v1 reader misreads (the reason gptq_v2 exists). Here (zero - 1) is taken modulo
// 2^bits before packing and UnpackGptq adds 1 modulo 2^bits, so every zero point survives the
// round trip exactly. Scales are rounded to fp16 (the format's dtype); codes, zeros and g_idx
// round-trip bit-exactly.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "quant/grid.h"

namespace bitsweep::quant {

struct PackedWeight {
  at::Tensor qweight, qzeros, scales, g_idx;
  int bits = 4;
  int64_t group_size = -1;  // as in the config: -1 per channel
};

// Bits the packed form supports: 2, 3, 4 and 8.
bool PackableBits(int bits);
// Whether `w` can be packed: packable bits, asymmetric grid (codes 0..maxq), and in/out
// feature counts that fill whole word runs. On false, `why` says what does not fit.
bool CanPack(const QuantizedWeight& w, std::string* why);

StatusOr<PackedWeight> PackGptq(const QuantizedWeight& w);
// The shapes PackGptq gives `w`'s four tensors, without packing (a writer lays out a file's
// header before it makes the tensors). REQUIRES: CanPack(w).
struct PackedShapes {
  std::vector<int64_t> qweight, qzeros, scales, g_idx;
};
PackedShapes PackedShapesOf(const QuantizedWeight& w);
// The inverse: codes, zeros, fp32 scales (from fp16) and g_idx. `out_features`/`in_features`
// are the weight's shape; errors name the tensor that does not fit.
StatusOr<QuantizedWeight> UnpackGptq(const PackedWeight& p, int64_t out_features,
                                     int64_t in_features);

}  // namespace bitsweep::quant
