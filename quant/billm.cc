// BiLLM: Aaronhuang-778/BiLLM bigptq.py fasterquant with utils/structure.py, autosearch.py,
// mask.py and binary.py (docs/methods.md#billm), for CPU.
//
// Walk-through (W [out, in] fp32, Hc = upper Cholesky factor of the damped H^-1):
//  1. Dead columns (diag H == 0) get H[i,i] = 1 and W[:, i] = 0; H += percdamp * mean(diag H) I.
//  2. For each block [st, ed) of n columns, on the current W1 = W[:, st:ed] (already updated by
//     the earlier blocks' compensation):
//     a. T = W1^2 / diag(Hc)[st:ed]^2 ("hessian") or T = W1 ("magnitude").
//     b. Salient columns (structural_searching): top = topk(sum_rows |T|, up_lim); for
//        i = 1..up_lim-1, e_i = mse(T, R2(T, M3_i) + R2(T, ~M3_i)) with M3_i = columns top[:i];
//        the first minimum i* wins (strict <), M3 = columns top[:i*].
//     c. Break point: S = |T * ~M3| over the whole block (the salient columns' zeros included);
//        the 81 candidates are numpy.quantile(S, linspace(0.1, 0.9, 81)) ("linear", emulated
//        exactly: float32 virtual index, float64 lerp); for each, M1 = S < p & ~M3,
//        M2 = S >= p & ~M3 and e_p = mse(T, R1(T, M1) + R1(T, M2) + R2(T, M3)); the first
//        minimum wins.
//     d. Q = R1(W1, M1) + R1(W1, M2) + R2(W1, M3); Err = (W1 - Q) / diag(Hc) column-wise;
//        W[:, st:ed] = Q; W[:, ed:] -= Err @ Hc[st:ed, ed:]. No intra-block update (upstream
//        binarises the whole block at once, then only spreads the block's error forward).
//  R_k is high_order_residual of order k (binary.py), here with explicit masks: upstream marks
//  the unmasked entries NaN, averages with nanmean and relies on torch.sign(NaN) == 0, which
//  gives the same numbers as masking explicitly (mu = alpha = 0 for empty rows).
//
// Why the searches run per output row on raw pointers: every candidate's error is a sum over
// rows of a row-local quantity (the (alpha, mu) pairs are per row), so each row evaluates all
// candidates in one task of at::parallel_for while its n values stay in L1, instead of
// materialising [candidates, out, n] tensors. The errors are accumulated in double, the final
// binarisation (step d) runs the explicit-mask ATen form in fp32 exactly as binary.py does.
#include "quant/billm.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/mixed_precision.h"
#include "model/arch.h"
#include "model/linear.h"
#include "model/qwen3.h"
#include "model/shape_string.h"
#include "quant/gptq.h"
#include "quant/tensor_parallel.h"

namespace bitsweep::quant {
namespace {

constexpr int64_t kNumSplitCandidates = 81;  // linspace(0.10, 0.90, 81)
constexpr int64_t kRowGrain = 8;

using model::ShapeString;

inline double Sign(double v) { return static_cast<double>((v > 0) - (v < 0)); }

// Squared error of the order-1 binarisation of x[0, c) (one region of one row): mu = mean,
// alpha = mean |x - mu|, error = sum (e - sign(e) alpha)^2 with e = x - mu, expanded as
// sum e^2 - 2 alpha sum |e| + alpha^2 #(e != 0). `sum` is sum x[0, c).
double Order1Error(const double* __restrict x, int64_t c, double sum) {
  if (c == 0) return 0;
  const double mu = sum / static_cast<double>(c);
  double sq = 0, ab = 0, nz = 0;
  for (int64_t j = 0; j < c; ++j) {
    const double e = x[j] - mu;
    sq += e * e;
    ab += std::abs(e);
    nz += e != 0;
  }
  const double a = ab / static_cast<double>(c);
  return sq - 2 * a * ab + a * a * nz;
}

// Squared error of the order-2 residual binarisation of x[0, c); r: c doubles of scratch.
double Order2Error(const double* __restrict x, int64_t c, double sum, double* __restrict r) {
  if (c == 0) return 0;
  const double inv_c = 1.0 / static_cast<double>(c);
  const double mu1 = sum * inv_c;
  double ab = 0;
  for (int64_t j = 0; j < c; ++j) ab += std::abs(x[j] - mu1);
  const double a1 = ab * inv_c;
  double s2 = 0;
  for (int64_t j = 0; j < c; ++j) {
    const double d = x[j] - mu1;
    const double v = d - Sign(d) * a1;  // x - (sign(x - mu1) * a1 + mu1)
    r[j] = v;
    s2 += v;
  }
  return Order1Error(r, c, s2);  // the second order binarises the residual r
}

// Salient-column search of one block. tp: [rows, n] double, columns in the order
// top[0..up), then the others. Returns i* in [1, up) (0 when up < 2).
int64_t SearchSalientCount(const at::Tensor& tp, int64_t up) {
  if (up < 2) return 0;
  const int64_t rows = tp.size(0);
  const int64_t n = tp.size(1);
  const int64_t ncand = up - 1;
  std::vector<double> row_err(rows * ncand, 0.0);
  const double* t = tp.data_ptr<double>();
  at::parallel_for(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<double> prefix(n + 1), scratch(n);
    for (int64_t r = begin; r < end; ++r) {
      const double* x = t + r * n;
      prefix[0] = 0;
      for (int64_t j = 0; j < n; ++j) prefix[j + 1] = prefix[j] + x[j];
      double* e = row_err.data() + r * ncand;
      for (int64_t i = 1; i < up; ++i) {
        e[i - 1] = Order2Error(x, i, prefix[i], scratch.data()) +
                   Order2Error(x + i, n - i, prefix[n] - prefix[i], scratch.data());
      }
    }
  });
  int64_t best = 1;
  double best_err = std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < ncand; ++c) {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) total += row_err[r * ncand + c];
    if (total < best_err) {
      best_err = total;
      best = c + 1;
    }
  }
  return best;
}

// numpy.quantile(values, q) with the default "linear" method on a float32 array with float32
// q (numpy 1.24: virtual index (n-1)*q in float32, gamma in float64, lerp in float64, b - diff *
// (1 - gamma) when gamma >= 0.5), then rounded to float32 as the torch comparison against the
// float32 block does. sorted: ascending.
float NumpyQuantile(const std::vector<float>& sorted, float q) {
  const int64_t n = static_cast<int64_t>(sorted.size());
  const float virt = static_cast<float>(n - 1) * q;
  if (virt >= static_cast<float>(n - 1)) return sorted[n - 1];
  if (virt < 0) return sorted[0];
  const int64_t prev = static_cast<int64_t>(std::floor(virt));
  const double gamma = static_cast<double>(virt) - static_cast<double>(prev);
  const float a = sorted[prev];
  const float b = sorted[prev + 1];
  const float diff = b - a;
  const double v = gamma >= 0.5 ? static_cast<double>(b) - static_cast<double>(diff) * (1 - gamma)
                                : static_cast<double>(a) + static_cast<double>(diff) * gamma;
  return static_cast<float>(v);
}

// Break-point search of one block: t [rows, n] float, salient [n] column flags. Returns p*.
float SearchBreakPoint(const at::Tensor& t, const std::vector<uint8_t>& salient) {
  const int64_t rows = t.size(0);
  const int64_t n = t.size(1);
  const float* tp = t.data_ptr<float>();
  // S = |T * ~M3| flattened, salient entries 0.
  std::vector<float> s(rows * n);
  for (int64_t i = 0; i < rows * n; ++i) s[i] = salient[i % n] ? 0.0f : std::abs(tp[i]);
  std::sort(s.begin(), s.end());
  const at::Tensor qs = at::linspace(0.10, 0.90, kNumSplitCandidates, at::kFloat);
  const float* q = qs.data_ptr<float>();
  std::vector<float> cand(kNumSplitCandidates);
  for (int64_t c = 0; c < kNumSplitCandidates; ++c) cand[c] = NumpyQuantile(s, q[c]);

  std::vector<int64_t> cols;
  for (int64_t j = 0; j < n; ++j) {
    if (!salient[j]) cols.push_back(j);
  }
  const int64_t m = static_cast<int64_t>(cols.size());
  std::vector<double> row_err(rows * kNumSplitCandidates, 0.0);
  at::parallel_for(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<std::pair<float, float>> v(m);  // (|T|, T) of the non-salient entries
    std::vector<float> mag(m);
    std::vector<double> x(m), prefix(m + 1);
    for (int64_t r = begin; r < end; ++r) {
      const float* row = tp + r * n;
      for (int64_t j = 0; j < m; ++j) v[j] = {std::abs(row[cols[j]]), row[cols[j]]};
      std::sort(v.begin(), v.end());
      prefix[0] = 0;
      for (int64_t j = 0; j < m; ++j) {
        mag[j] = v[j].first;
        x[j] = v[j].second;
        prefix[j + 1] = prefix[j] + x[j];
      }
      double* e = row_err.data() + r * kNumSplitCandidates;
      for (int64_t c = 0; c < kNumSplitCandidates; ++c) {
        // M1 = |T| < p: a prefix of the entries sorted by |T|.
        const int64_t k = std::lower_bound(mag.begin(), mag.end(), cand[c]) - mag.begin();
        e[c] = Order1Error(x.data(), k, prefix[k]) +
               Order1Error(x.data() + k, m - k, prefix[m] - prefix[k]);
      }
    }
  });
  int64_t best = 0;
  double best_err = std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < kNumSplitCandidates; ++c) {
    double total = 0;
    for (int64_t r = 0; r < rows; ++r) total += row_err[r * kNumSplitCandidates + c];
    if (total < best_err) {
      best_err = total;
      best = c;
    }
  }
  return cand[best];
}

// high_order_residual with explicit masks; x fp32 [rows, n], m the mask as fp32 0/1.
at::Tensor HighOrderResidualImpl(const at::Tensor& x, const at::Tensor& m, int64_t order) {
  const at::Tensor cnt = m.sum(1, /*keepdim=*/true);
  const at::Tensor has = cnt.gt(0);
  const at::Tensor zero = at::zeros({}, x.options());
  const at::Tensor xm = x * m;
  at::Tensor acc = at::zeros_like(x);
  for (int64_t od = 0; od < order; ++od) {
    const at::Tensor r = xm - acc;
    const at::Tensor mu = at::where(has, (r * m).sum(1, true) / cnt, zero);
    const at::Tensor dev = r - mu;
    const at::Tensor alpha = at::where(has, (dev.abs() * m).sum(1, true) / cnt, zero);
    acc = acc + (dev.sign() * alpha + mu) * m;
  }
  return acc;
}

Status ValidateBillmInputs(const at::Tensor& w, const at::Tensor& h, const BillmOptions& o) {
  if (!w.defined() || w.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BillmQuantize: w must be a 2-D [out, in] tensor, got ",
        w.defined() ? absl::StrCat(w.dim(), "-D ", ShapeString(w)) : "an undefined tensor"));
  }
  if (!w.is_floating_point()) {
    return absl::InvalidArgumentError("BillmQuantize: w must be a floating-point tensor");
  }
  if (w.size(0) == 0 || w.size(1) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmQuantize: w ", ShapeString(w), " is empty"));
  }
  const int64_t in = w.size(1);
  if (!h.defined() || h.dim() != 2 || h.size(0) != in || h.size(1) != in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BillmQuantize: h must be [in, in] = [", in, ", ", in, "] to match w ", ShapeString(w),
        ", got ", h.defined() ? ShapeString(h) : "an undefined tensor"));
  }
  if (!h.is_floating_point()) {
    return absl::InvalidArgumentError("BillmQuantize: h must be a floating-point tensor");
  }
  if (o.blocksize < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmOptions.blocksize = ", o.blocksize, " must be >= 1"));
  }
  if (!(o.percdamp >= 0) || !std::isfinite(o.percdamp)) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmOptions.percdamp = ", o.percdamp, " must be finite and >= 0"));
  }
  if (o.up_lim < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmOptions.up_lim = ", o.up_lim, " must be >= 2"));
  }
  return absl::OkStatus();
}

StatusOr<BillmResult> BillmQuantizeImpl(const at::Tensor& w, const at::Tensor& h,
                                        const BillmOptions& options) {
  c10::NoGradGuard no_grad;
  const int64_t rows = w.size(0);
  const int64_t in = w.size(1);
  // H and W in fp32 on w's device. The per-block searches (salient count, break point) are
  // sorts and prefix sums over the block on the host: each block's [rows, blocksize] saliency
  // is copied over once, explicitly (T_host below).
  const c10::Device device = w.device();
  at::Tensor H = h.to(device, at::kFloat).clone(at::MemoryFormat::Contiguous);
  if (!at::isfinite(H).all().item<bool>()) {
    return absl::InvalidArgumentError("BillmQuantize: h contains non-finite values");
  }
  at::Tensor W = w.to(device, at::kFloat).clone(at::MemoryFormat::Contiguous);
  const at::Tensor dead = H.diagonal().eq(0);
  H.diagonal().masked_fill_(dead, 1);
  W.masked_fill_(dead.unsqueeze(0), 0);
  H.diagonal().add_(H.diagonal().mean() * options.percdamp);

  at::Tensor L, info;
  std::tie(L, info) = at::linalg_cholesky_ex(H, /*upper=*/false, /*check_errors=*/false);
  if (info.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BillmQuantize: the damped Hessian h is not positive definite (Cholesky failed at order ",
        info.item<int64_t>(), "); raise percdamp or calibrate on more tokens"));
  }
  at::Tensor Hc;
  std::tie(Hc, info) = at::linalg_cholesky_ex(at::cholesky_inverse(L), /*upper=*/true,
                                              /*check_errors=*/false);
  if (info.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "BillmQuantize: the inverse of the damped Hessian h is not positive definite (Cholesky "
        "failed at order ",
        info.item<int64_t>(), "); raise percdamp"));
  }
  Hc = Hc.contiguous();
  const at::Tensor hdiag = Hc.diagonal().contiguous();

  BillmResult result;
  result.region = at::empty({rows, in}, W.options().dtype(at::kChar));
  double loss = 0;
  double storage = 0;
  int64_t salient_total = 0;
  for (int64_t st = 0; st < in; st += options.blocksize) {
    const int64_t ed = std::min(st + options.blocksize, in);
    const int64_t n = ed - st;
    const at::Tensor W1 = W.slice(1, st, ed).clone(at::MemoryFormat::Contiguous);  // [rows, n]
    const at::Tensor d = hdiag.slice(0, st, ed).reshape({1, n});
    const at::Tensor T =
        (options.saliency == BillmOptions::Saliency::kHessian ? W1.pow(2) / d.pow(2) : W1)
            .contiguous();

    // Salient columns.
    const int64_t up = std::min(options.up_lim, n);
    const at::Tensor T_host = T.cpu();  // the block's saliency for the host searches
    const at::Tensor top = std::get<1>(at::topk(T_host.abs().sum(0), up));  // [up], descending
    std::vector<int64_t> order(top.data_ptr<int64_t>(), top.data_ptr<int64_t>() + up);
    {
      std::vector<uint8_t> in_top(n, 0);
      for (int64_t c : order) in_top[c] = 1;
      for (int64_t j = 0; j < n; ++j) {
        if (!in_top[j]) order.push_back(j);
      }
    }
    const at::Tensor tp =
        T_host.index_select(1, at::tensor(order, at::kLong)).to(at::kDouble).contiguous();
    const int64_t k = SearchSalientCount(tp, up);
    std::vector<uint8_t> salient(n, 0);
    for (int64_t i = 0; i < k; ++i) salient[order[i]] = 1;

    // Break point and the three regions.
    const float p = SearchBreakPoint(T_host, salient);
    const at::Tensor col_salient = at::from_blob(salient.data(), {1, n}, at::kByte)
                                       .to(device, at::kBool)
                                       .expand({rows, n});
    const at::Tensor big = T.abs().ge(p);
    const at::Tensor m3 = col_salient;
    const at::Tensor m2 = big.logical_and(col_salient.logical_not());
    const at::Tensor m1 = big.logical_not().logical_and(col_salient.logical_not());

    // Binarise the block and spread its error forward.
    const at::Tensor Q = HighOrderResidualImpl(W1, m1.to(at::kFloat), 1) +
                         HighOrderResidualImpl(W1, m2.to(at::kFloat), 1) +
                         HighOrderResidualImpl(W1, m3.to(at::kFloat), 2);
    const at::Tensor Err = (W1 - Q) / d;
    loss += Err.to(at::kDouble).pow(2).sum().item<double>() / 2;
    W.slice(1, st, ed).copy_(Q);
    if (ed < in) {
      W.slice(1, ed).addmm_(Err, Hc.slice(0, st, ed).slice(1, ed), /*beta=*/1, /*alpha=*/-1);
    }
    result.region.slice(1, st, ed).copy_(m2.to(at::kChar) + m3.to(at::kChar) * 2);

    salient_total += k;
    result.salient_fraction_last_block = static_cast<double>(k) / static_cast<double>(n);
    storage += static_cast<double>(rows * n + rows * k + n + rows * (n - k) + rows * 4 * 2 * 16);
  }
  result.weight = W;
  result.loss = loss;
  result.salient_fraction = static_cast<double>(salient_total) / static_cast<double>(in);
  result.storage_bits = storage / static_cast<double>(rows * in);
  return result;
}

}  // namespace

StatusOr<at::Tensor> BillmHighOrderResidual(const at::Tensor& x, const at::Tensor& mask,
                                            int64_t order) {
  if (!x.defined() || x.dim() != 2 || !x.is_floating_point()) {
    return absl::InvalidArgumentError("BillmHighOrderResidual: x must be a 2-D float tensor");
  }
  if (!mask.defined() || mask.sizes() != x.sizes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmHighOrderResidual: mask must have x's shape ", ShapeString(x)));
  }
  if (order < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("BillmHighOrderResidual: order = ", order, " must be >= 1"));
  }
  try {
    c10::NoGradGuard no_grad;
    return HighOrderResidualImpl(x.to(at::kFloat), mask.to(at::kBool).to(at::kFloat), order);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("BillmHighOrderResidual: ", e.what_without_backtrace()));
  }
}

StatusOr<BillmResult> BillmQuantize(const at::Tensor& w, const at::Tensor& h,
                                    const BillmOptions& options) {
  RETURN_IF_ERROR(ValidateBillmInputs(w, h, options));
  try {
    return BillmQuantizeImpl(w, h, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("BillmQuantize: ", e.what_without_backtrace()));
  }
}

Status BillmQuantizeLayer(LayerJob& job, const BillmOptions& options, QuantizeResult* out,
                          const std::function<bool(const std::string&)>& keep_fp) {
  try {
    model::Qwen3Model& m = *job.model;
    const int64_t i = job.index;
    std::vector<at::Tensor>& xs = *job.xs;
    const model::RopeTables& rope = *job.rope;
    model::DecoderLayer& layer = m.layer(i);
    std::vector<std::string> names = model::QuantizedLinears(layer);
    if (keep_fp) {  // mixed recipe: those stay in FP and need no Hessian
      names.erase(std::remove_if(names.begin(), names.end(), keep_fp), names.end());
    }
    const std::map<std::string, model::LinearRole> roles = model::LinearRoles(layer);

    // One forward collects every linear's H (no true-sequential re-runs).
    ASSIGN_OR_RETURN(LayerHessians lh, CollectHessians(job, names));

    for (size_t k = 0; k < names.size(); ++k) {
      model::Linear& lin = *lh.linears[k];
      const std::string name = job.prefix + names[k];
      at::Tensor H = lh.h[k]->H();
      std::string note;
      if (lh.tokens[k] < job.min_expert_tokens && roles.at(names[k]).expert) {
        // No 1-bit RTN exists: binarise without data, H = I (saliency by magnitude^2).
        H = at::eye(lin.in_features(), lin.weight().options().dtype(at::kFloat));
        note = absl::StrCat("fallback to BiLLM with H = I: ", lh.tokens[k], " calibration tokens (< ",
                            job.min_expert_tokens, ")");
      }
      lh.h[k].reset();
      StatusOr<BillmResult> q = BillmQuantize(lin.weight(), H, options);
      if (!q.ok()) {
        return absl::Status(q.status().code(), absl::StrCat(name, ": ", q.status().message()));
      }
      lin.SetWeight(q->weight);
      LinearReport r;
      r.name = name;
      r.loss = q->loss;
      r.calib_tokens = lh.tokens[k];
      r.note = note;
      r.stats = {{"salient_fraction", q->salient_fraction},
                 {"salient_fraction_last_block", q->salient_fraction_last_block},
                 {"storage_bits", q->storage_bits},
                 {"params", static_cast<double>(lin.weight().numel())}};
      out->linears.push_back(std::move(r));
    }
    for (at::Tensor& x : xs) x = m.RunLayer(i, x, rope);

    // Model-level numbers over every BiLLM linear reported so far.
    double params = 0, study = 0, storage = 0;
    for (const LinearReport& r : out->linears) {
      auto p = r.stats.find("params");
      auto s = r.stats.find("storage_bits");
      auto l = r.stats.find("salient_fraction_last_block");
      if (p == r.stats.end() || s == r.stats.end() || l == r.stats.end()) continue;
      params += p->second;
      study += p->second * l->second;
      storage += p->second * s->second;
    }
    if (params > 0) {
      out->summary["billm_params"] = params;
      out->summary["billm_effective_bits_study"] = 1 + study / params;
      out->summary["billm_storage_bits"] = storage / params;
    }
    return absl::OkStatus();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("BillmQuantizeLayer: ", e.what_without_backtrace()));
  }
}

namespace {

class BillmMethod : public QuantizerWith<BillmOptions> {
 public:
  using QuantizerWith::QuantizerWith;

  Status Validate(const model::Qwen3Config& config) const override {
    // BiLLM's blocks need not divide in_features; overrides must name the model's layers.
    return ValidateOverrideLayers(this->config(), config.num_hidden_layers);
  }

  // BiLLM's search couples rows: under TP each layer is quantized whole.
  Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const override {
    if (!mixed()) {
      return RunOnWholeLayer(job,
                             [&](LayerJob& j) { return BillmQuantizeLayer(j, options(), out); });
    }
    const int64_t layer = job.index;
    const std::function<bool(const std::string&)> keep_fp = [this, layer](const std::string& n) {
      return !LinearGrid(layer, n).has_value();
    };
    return RunOnWholeLayer(
        job, [&](LayerJob& j) { return BillmQuantizeLayer(j, options(), out, keep_fp); });
  }

  nlohmann::json Recipe() const override {
    const BillmOptions& b = options();
    const bool magnitude = b.saliency == BillmOptions::Saliency::kMagnitude;
    return {{"percdamp", b.percdamp},
            {"blocksize", b.blocksize},
            {"up_lim", b.up_lim},
            {"saliency", magnitude ? "magnitude" : "hessian"}};
  }
};

}  // namespace

StatusOr<QuantizerPtr> MakeBillmQuantizer(const MethodInfo& row, const QuantConfig& config) {
  BillmOptions b;
  b.percdamp = OptionDouble(config.options, "percdamp");
  b.blocksize = OptionInt(config.options, "blocksize");
  b.up_lim = OptionInt(config.options, "billm_up_lim");
  b.saliency = OptionText(config.options, "billm_saliency") == "magnitude"
                   ? BillmOptions::Saliency::kMagnitude
                   : BillmOptions::Saliency::kHessian;
  QuantGrid grid;  // 1 bit; the binarisation groups are the blocks
  grid.bits = 1;
  grid.group_size = b.blocksize;
  return QuantizerPtr(new BillmMethod(row, config, grid, b));
}

}  // namespace bitsweep::quant
