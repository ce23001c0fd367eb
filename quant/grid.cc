// Quantizer primitives of docs/methods.md#grids, written with the same tensor operations, in the
// same order, as the Python they reproduce (gptq quant.py, llm-awq quantizer.py, smoothquant
// fake_quant.py), so that results agree bit for bit in fp32 and not merely to a tolerance.
#include "quant/grid.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "model/collective.h"

namespace bitsweep::quant {
namespace {

constexpr int kMinBits = 1;
constexpr int kMaxBits = 8;
// A 1-bit symmetric grid has qmax = 2^0 - 1 = 0: the single level 0 and a division by zero.
constexpr int kMinSymBits = 2;
// Both llm-awq and smoothquant clamp the range (or abs-max) from below by this, so that an
// all-zero row does not produce a zero scale.
constexpr double kMinRange = 1e-5;
// Per-token activation grids: up to 16 bits still has every level exactly representable in fp32.
constexpr int kMaxTokenBits = 16;

}  // namespace

int64_t QuantGrid::maxq() const {
  if (kind == GridKind::kSymAbsMax) return (int64_t{1} << (bits - 1)) - 1;
  return (int64_t{1} << bits) - 1;
}

int64_t QuantGrid::minq() const { return kind == GridKind::kSymAbsMax ? -maxq() : 0; }

Status QuantGrid::Validate(int64_t in_features) const {
  if (bits < kMinBits || bits > kMaxBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantGrid.bits = ", bits, " is out of range ", kMinBits, "..", kMaxBits));
  }
  if (kind == GridKind::kSymAbsMax && bits < kMinSymBits) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantGrid.bits = ", bits, " is out of range ", kMinSymBits, "..", kMaxBits,
                     " for the symmetric abs-max grid (1 bit leaves the single level 0)"));
  }
  if (in_features <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("in_features = ", in_features, " must be positive"));
  }
  if (group_size != -1 && (group_size <= 0 || in_features % group_size != 0)) {
    return absl::InvalidArgumentError(absl::StrCat("QuantGrid.group_size = ", group_size,
                                                   " does not divide in_features = ", in_features,
                                                   " (use -1 for one group per output channel)"));
  }
  return absl::OkStatus();
}

GroupParams FindParams(const at::Tensor& w, const QuantGrid& grid) {
  TORCH_CHECK(w.dim() == 2, "FindParams: w must be 2-D [rows, cols], got ", w.dim(), "-D");
  const at::Tensor x = w.to(at::kFloat);
  const double maxq = static_cast<double>(grid.maxq());
  GroupParams p;
  switch (grid.kind) {
    case GridKind::kMinMaxWithZero: {
      // gptq quant.py Quantizer.find_params (sym=False, mse=False).
      const at::Tensor zeros = at::zeros({x.size(0)}, x.options());
      at::Tensor xmin = at::minimum(x.amin(1), zeros);
      at::Tensor xmax = at::maximum(x.amax(1), zeros);
      const at::Tensor both_zero = xmin.eq(0).logical_and(xmax.eq(0));
      xmin.masked_fill_(both_zero, -1);
      xmax.masked_fill_(both_zero, 1);
      p.scale = (xmax - xmin) / maxq;
      p.zero = at::round(-xmin / p.scale);
      break;
    }
    case GridKind::kMinMax: {
      // llm-awq pseudo_quantize_tensor (zero_point=True).
      const at::Tensor max_val = x.amax(1);
      const at::Tensor min_val = x.amin(1);
      p.scale = (max_val - min_val).clamp_min(kMinRange) / maxq;
      p.zero = (-at::round(min_val / p.scale)).clamp(0, maxq);
      break;
    }
    case GridKind::kSymAbsMax: {
      // smoothquant quantize_weight_per_channel_absmax.
      p.scale = x.abs().amax(1).clamp_min(kMinRange) / maxq;
      p.zero = at::zeros_like(p.scale);
      break;
    }
  }
  return p;
}

at::Tensor QuantizeCodes(const at::Tensor& w, const GroupParams& p, const QuantGrid& grid) {
  TORCH_CHECK(w.dim() == 2, "QuantizeCodes: w must be 2-D [rows, cols], got ", w.dim(), "-D");
  const at::Tensor scale = p.scale.unsqueeze(1);
  const at::Tensor zero = p.zero.unsqueeze(1);
  // For kSymAbsMax zero is 0 and |round(w/scale)| <= qmax already (docs/methods.md#grids), so the
  // clamp only guards the invariant that -2^(b-1) is never produced.
  return (at::round(w.to(at::kFloat) / scale) + zero)
      .clamp(static_cast<double>(grid.minq()), static_cast<double>(grid.maxq()));
}

at::Tensor DequantizeCodes(const at::Tensor& codes, const GroupParams& p) {
  return p.scale.unsqueeze(1) * (codes.to(at::kFloat) - p.zero.unsqueeze(1));
}

at::Tensor FakeQuantize(const at::Tensor& w, const GroupParams& p, const QuantGrid& grid) {
  return DequantizeCodes(QuantizeCodes(w, p, grid), p);
}

at::Tensor QuantizedWeight::Dequantize() const {
  // Same expression as DequantizeCodes, so a stored weight dequantises to exactly the values the
  // quantiser produced.
  const at::Tensor idx = g_idx.to(at::kLong);
  return scales.index_select(1, idx) * (codes.to(at::kFloat) - zeros.index_select(1, idx));
}

void QuantizedWeight::NarrowCodes() {
  if (!codes.defined()) return;
  const int64_t lo = grid.minq(), hi = grid.maxq();
  if (lo >= 0 && hi <= 255) {
    codes = codes.to(at::kByte);
  } else if (lo >= -128 && hi <= 127) {
    codes = codes.to(at::kChar);
  }
}

at::Tensor FakeQuantizePerToken(const at::Tensor& x, int bits, const model::Collective* features) {
  TORCH_CHECK(bits >= kMinSymBits && bits <= kMaxTokenBits, "FakeQuantizePerToken: bits = ", bits,
              " is out of range ", kMinSymBits, "..", kMaxTokenBits);
  TORCH_CHECK(x.dim() >= 1, "FakeQuantizePerToken: x must have a last (channel) dimension");
  const double qmax = static_cast<double>((int64_t{1} << (bits - 1)) - 1);
  const at::Tensor xf = x.to(at::kFloat);
  at::Tensor absmax = xf.abs().amax(-1, /*keepdim=*/true);
  if (features != nullptr && features->world_size() > 1) features->AllReduceMax(absmax);
  const at::Tensor scale = absmax.clamp_min(kMinRange) / qmax;
  return (at::round(xf / scale) * scale).to(x.scalar_type());
}

}  // namespace bitsweep::quant
