// Quantization grids: the integer grids every method rounds weights (or activations) onto.
//
// Conventions (all of quant/): weights are [out_features, in_features] row-major; groups run
// along in_features; a "group size" of -1 means one group per output row (per channel).
// Integer codes, scales and zero points are first-class values: a QuantizedWeight can be
// dequantised, packed, stored and compared, not only fake-quantised.
//
// Grid kinds (docs/methods.md#grids):
//   kMinMaxWithZero  GPTQ/RTN: asymmetric, range [min(w,0), max(w,0)], an all-zero group uses
//                    [-1, 1]; scale = (max-min)/maxq, zero = round(-min/scale);
//                    q = clamp(round(w/scale) + zero, 0, maxq), w_hat = scale * (q - zero).
//   kMinMax          AWQ: asymmetric over [min(w), max(w)] (not forced to contain 0);
//                    scale = clamp(max-min, 1e-5)/maxq, zero = clamp(-round(min/scale), 0, maxq).
//   kSymAbsMax       SmoothQuant: scale = clamp(max|w|, 1e-5)/(2^(b-1)-1), q = round(w/scale),
//                    levels -qmax..qmax, w_hat = q * scale (zero point 0).
// Rounding is round-half-to-even (torch.round). Parameters are computed in fp32.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace bitsweep::model {
class Collective;
}  // namespace bitsweep::model

namespace bitsweep::quant {

enum class GridKind { kMinMaxWithZero, kMinMax, kSymAbsMax };

struct QuantGrid {
  int bits = 4;             // 1..8
  int64_t group_size = -1;  // -1 = per output channel; otherwise divides in_features
  GridKind kind = GridKind::kMinMaxWithZero;

  int64_t maxq() const;  // largest code: 2^bits - 1 (asymmetric) or 2^(bits-1) - 1 (symmetric)
  int64_t minq() const;  // smallest code: 0 (asymmetric) or -maxq() (symmetric)
  // InvalidArgument naming the parameter when bits are out of range (1..8; 2..8 for kSymAbsMax,
  // whose 1-bit grid would have the single level 0) or the group size does not divide
  // `in_features`.
  Status Validate(int64_t in_features) const;
};

// The primitives below work on any float dtype (computing in fp32) and REQUIRE a 2-D `w` and
// params with one entry per row; they throw c10::Error otherwise. The Status-returning entry
// points (RtnQuantize, GptqQuantize) validate their arguments before calling them.

// Scale and zero point per row of `w` [rows, cols] (one group): both [rows] fp32.
struct GroupParams {
  at::Tensor scale;
  at::Tensor zero;  // integer-valued (stored as fp32); 0 for kSymAbsMax
};
GroupParams FindParams(const at::Tensor& w, const QuantGrid& grid);

// Integer codes of `w` [rows, cols] under per-row params, as fp32 values in the code range.
at::Tensor QuantizeCodes(const at::Tensor& w, const GroupParams& p, const QuantGrid& grid);
// scale * (codes - zero), fp32.
at::Tensor DequantizeCodes(const at::Tensor& codes, const GroupParams& p);
// DequantizeCodes(QuantizeCodes(w)) in one step (fake quantisation), fp32.
at::Tensor FakeQuantize(const at::Tensor& w, const GroupParams& p, const QuantGrid& grid);

// A quantised weight: codes [out, in] (int32 as the quantisers return them; NarrowCodes may make
// them uint8 or int8), scales and zeros [out, n_groups] (fp32), and g_idx [in] (int32): the
// group of each input column (column order of the original weight, so act-order GPTQ keeps its
// permuted groups).
struct QuantizedWeight {
  at::Tensor codes;
  at::Tensor scales;
  at::Tensor zeros;
  at::Tensor g_idx;
  QuantGrid grid;

  // scale[g_idx[j]] * (codes[:, j] - zero[g_idx[j]]) for every column j: [out, in] fp32.
  at::Tensor Dequantize() const;
  // Stores the codes in the narrowest integer dtype that holds the grid's whole code range:
  // uint8 for 0..maxq <= 255, int8 for -127..127, otherwise unchanged. The values are the same
  // (Dequantize and packing read any integer dtype); the layer-wise driver keeps a layer's codes
  // this way until it is written, a quarter of int32's memory.
  void NarrowCodes();
};

// Fake-quantises activations per token (last dimension) with a symmetric abs-max grid of `bits`
// (SmoothQuant's dynamic per-token activation quantiser); returns a tensor of x's dtype.
// With `features` set, x holds this rank's slice of each token's features and the abs-max is
// all-reduced over the group first, so the result equals the whole-vector quantisation.
at::Tensor FakeQuantizePerToken(const at::Tensor& x, int bits,
                                const model::Collective* features = nullptr);

}  // namespace bitsweep::quant
