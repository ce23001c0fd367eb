#include "quant/packed.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bitsweep::quant {
namespace {

// Values per run and words per run: the smallest whole number of words holding whole values.
int64_t RunValues(int bits) { return 32 / std::gcd(32, bits); }
int64_t RunWords(int bits) { return bits / std::gcd(32, bits); }

// v: [n, m] int64 values in 0..2^bits-1, packed along dim 0 -> [n * bits / 32, m] int32.
at::Tensor PackRows(const at::Tensor& v, int bits) {
  const int64_t n = v.size(0), m = v.size(1);
  const int64_t rv = RunValues(bits), rw = RunWords(bits);
  at::Tensor runs = v.reshape({n / rv, rv, m});
  at::Tensor words = at::zeros({n / rv, rw, m}, at::kLong);
  for (int64_t k = 0; k < rv; ++k) {
    const int64_t bit = bits * k, word = bit / 32, off = bit % 32;
    at::Tensor x = runs.select(1, k);
    words.select(1, word).bitwise_or_(at::bitwise_and(x * (int64_t{1} << off), int64_t{0xFFFFFFFF}));
    if (off + bits > 32) {
      words.select(1, word + 1).bitwise_or_(at::floor_divide(x, int64_t{1} << (32 - off)));
    }
  }
  // Reinterpret the unsigned 32-bit words as int32 (two's complement).
  words = at::where(words >= (int64_t{1} << 31), words - (int64_t{1} << 32), words);
  return words.reshape({n / rv * rw, m}).to(at::kInt);
}

// Inverse of PackRows: [n * bits / 32, m] int32 -> [n, m] int64.
at::Tensor UnpackRows(const at::Tensor& packed, int bits, int64_t n) {
  const int64_t m = packed.size(1);
  const int64_t rv = RunValues(bits), rw = RunWords(bits);
  at::Tensor words = at::bitwise_and(packed.to(at::kLong), int64_t{0xFFFFFFFF}).reshape({n / rv, rw, m});
  const int64_t maxq = (int64_t{1} << bits) - 1;
  std::vector<at::Tensor> values;
  for (int64_t k = 0; k < rv; ++k) {
    const int64_t bit = bits * k, word = bit / 32, off = bit % 32;
    at::Tensor x = at::floor_divide(words.select(1, word), int64_t{1} << off);
    if (off + bits > 32) x = x + words.select(1, word + 1) * (int64_t{1} << (32 - off));
    values.push_back(at::bitwise_and(x, maxq));
  }
  return at::stack(values, 1).reshape({n, m});
}

}  // namespace

bool PackableBits(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

bool CanPack(const QuantizedWeight& w, std::string* why) {
  const int bits = w.grid.bits;
  if (!PackableBits(bits)) {
    *why = absl::StrCat(bits, "-bit weights have no GPTQ packed form (2, 3, 4 and 8 do)");
    return false;
  }
  if (w.grid.kind == GridKind::kSymAbsMax) {
    *why = "symmetric abs-max codes (signed) are not stored in the GPTQ layout";
    return false;
  }
  const int64_t rv = RunValues(bits);
  if (w.codes.size(1) % rv != 0 || w.codes.size(0) % rv != 0) {
    *why = absl::StrCat("in_features ", w.codes.size(1), " and out_features ", w.codes.size(0),
                        " must be multiples of ", rv, " for ", bits, "-bit packing");
    return false;
  }
  return true;
}

StatusOr<PackedWeight> PackGptq(const QuantizedWeight& w) {
  std::string why;
  if (!CanPack(w, &why)) return absl::InvalidArgumentError(why);
  try {
    const int bits = w.grid.bits;
    const int64_t maxq = (int64_t{1} << bits) - 1;
    PackedWeight p;
    p.bits = bits;
    p.group_size = w.grid.group_size;
    // W^T's codes, packed along the input dimension, a slice of output channels at a time: the
    // packing works in int64, and a whole Qwen3-8B down_proj in int64 would be 403 MB.
    constexpr int64_t kOutSlice = 1024;
    std::vector<at::Tensor> slices;
    for (int64_t o = 0; o < w.codes.size(0); o += kOutSlice) {
      const int64_t n = std::min(kOutSlice, w.codes.size(0) - o);
      slices.push_back(PackRows(w.codes.narrow(0, o, n).t().contiguous().to(at::kLong), bits));
    }
    p.qweight = at::cat(slices, 1);
    // (zero - 1) mod 2^bits, packed along the output dimension: [n_groups, out * bits / 32].
    at::Tensor z = at::remainder(w.zeros.round().to(at::kLong) - 1, maxq + 1);
    p.qzeros = PackRows(z.contiguous(), bits).t().contiguous();
    p.scales = w.scales.t().contiguous().to(at::kHalf);
    p.g_idx = w.g_idx.to(at::kInt).contiguous();
    return p;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("PackGptq: ", e.what_without_backtrace()));
  }
}

PackedShapes PackedShapesOf(const QuantizedWeight& w) {
  const int bits = w.grid.bits;
  const int64_t rv = RunValues(bits), rw = RunWords(bits);
  const int64_t out = w.codes.size(0), in = w.codes.size(1), groups = w.scales.size(1);
  return {{in / rv * rw, out}, {groups, out / rv * rw}, {groups, out}, {in}};
}

StatusOr<QuantizedWeight> UnpackGptq(const PackedWeight& p, int64_t out, int64_t in) {
  if (!PackableBits(p.bits)) {
    return absl::InvalidArgumentError(absl::StrCat("bits ", p.bits, " is not 2, 3, 4 or 8"));
  }
  const int64_t rv = RunValues(p.bits), rw = RunWords(p.bits);
  auto shape_error = [](const char* name, const at::Tensor& t, const std::string& want) {
    std::ostringstream os;
    os << name << " has shape " << t.sizes() << ", expected " << want;
    return absl::InvalidArgumentError(os.str());
  };
  if (in % rv != 0 || out % rv != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shape [", out, ", ", in, "] does not fill ", p.bits, "-bit word runs"));
  }
  if (!p.g_idx.defined() || p.g_idx.dim() != 1 || p.g_idx.size(0) != in) {
    return shape_error("g_idx", p.g_idx, absl::StrCat("[", in, "]"));
  }
  if (!p.qweight.defined() || p.qweight.dim() != 2 || p.qweight.size(0) != in / rv * rw ||
      p.qweight.size(1) != out || p.qweight.scalar_type() != at::kInt) {
    return shape_error("qweight", p.qweight, absl::StrCat("int32 [", in / rv * rw, ", ", out, "]"));
  }
  if (!p.scales.defined() || p.scales.dim() != 2 || p.scales.size(1) != out) {
    return shape_error("scales", p.scales, absl::StrCat("[n_groups, ", out, "]"));
  }
  const int64_t groups = p.scales.size(0);
  if (!p.qzeros.defined() || p.qzeros.dim() != 2 || p.qzeros.size(0) != groups ||
      p.qzeros.size(1) != out / rv * rw || p.qzeros.scalar_type() != at::kInt) {
    return shape_error("qzeros", p.qzeros,
                       absl::StrCat("int32 [", groups, ", ", out / rv * rw, "]"));
  }
  try {
    at::Tensor g = p.g_idx.to(at::kLong);
    if (in > 0 && (g.min().item<int64_t>() < 0 || g.max().item<int64_t>() >= groups)) {
      return absl::InvalidArgumentError(
          absl::StrCat("g_idx holds a group outside [0, ", groups, ")"));
    }
    const int64_t maxq = (int64_t{1} << p.bits) - 1;
    QuantizedWeight w;
    w.grid.bits = p.bits;
    w.grid.group_size = p.group_size;
    w.grid.kind = GridKind::kMinMaxWithZero;
    w.codes = UnpackRows(p.qweight, p.bits, in).t().contiguous().to(at::kInt);
    at::Tensor z = UnpackRows(p.qzeros.t().contiguous(), p.bits, out).t();  // [groups, out]
    w.zeros = at::remainder(z + 1, maxq + 1).t().contiguous().to(at::kFloat);
    w.scales = p.scales.to(at::kFloat).t().contiguous();
    w.g_idx = p.g_idx.to(at::kInt).contiguous();
    return w;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("UnpackGptq: ", e.what_without_backtrace()));
  }
}

}  // namespace bitsweep::quant
