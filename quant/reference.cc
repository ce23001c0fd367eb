// Column-by-column GPTQ, one line of fasterquant's pseudo-code (docs/methods.md#gptq) at a time.
// Deliberately shares nothing with gptq.cc but the argument checks and the grid primitives.
#include "quant/reference.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bitsweep::quant {
namespace {

StatusOr<GptqResult> GptqQuantizeRefImpl(const at::Tensor& w, const at::Tensor& h,
                                         const GptqOptions& options) {
  c10::NoGradGuard no_grad;
  const QuantGrid& grid = options.grid;
  const int64_t out = w.size(0);
  const int64_t in = w.size(1);
  const int64_t groupsize = grid.group_size;  // -1: per channel
  const int64_t n_groups = groupsize == -1 ? 1 : in / groupsize;

  at::Tensor W = w.to(at::kFloat).clone();  // [out, in]
  at::Tensor H = h.to(at::kFloat).clone();  // [in, in]
  if (!at::isfinite(H).all().item<bool>()) {
    return absl::InvalidArgumentError("GptqQuantizeRef: h contains non-finite values");
  }

  // Params of every group, in the order groups are numbered in the result: [out] each.
  std::vector<GroupParams> params(n_groups);

  // if per-channel: quantizer.find_params(W), once, on the original W.
  if (groupsize == -1) params[0] = FindParams(W, grid);

  // dead = diag(H) == 0; H[dead, dead] = 1; W[:, dead] = 0
  const at::Tensor dead = at::diag(H).eq(0);
  const at::Tensor dead_idx = dead.nonzero().flatten();
  H.index_put_({dead_idx, dead_idx}, 1.0);
  W.index_put_({at::indexing::Slice(), dead_idx}, 0.0);

  // static_groups: every group's params up front, on the un-permuted W.
  const bool static_groups = groupsize != -1 && options.static_groups;
  if (static_groups) {
    for (int64_t g = 0; g < n_groups; ++g) {
      params[g] = FindParams(W.slice(1, g * groupsize, (g + 1) * groupsize), grid);
    }
  }

  // if actorder: perm = argsort(diag(H), descending) (stable); W = W[:, perm]; H = H[perm][:, perm]
  at::Tensor perm = at::arange(in, at::kLong);
  if (options.act_order) {
    perm = at::argsort(at::diag(H), /*stable=*/true, /*dim=*/0, /*descending=*/true);
    W = W.index_select(1, perm);
    H = H.index_select(0, perm).index_select(1, perm);
  }

  // H[i, i] += percdamp * mean(diag(H)); Hinv = cholesky_upper(inverse(H))
  const at::Tensor damp = options.percdamp * at::mean(at::diag(H));
  H = H + at::diag(damp.expand({in}));
  const auto [L, info] = at::linalg_cholesky_ex(H);
  if (info.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(
        "GptqQuantizeRef: the damped Hessian h is not positive definite (Cholesky failed)");
  }
  const auto [Hinv, info_inv] = at::linalg_cholesky_ex(at::cholesky_inverse(L), /*upper=*/true);
  if (info_inv.item<int64_t>() != 0) {
    return absl::FailedPreconditionError(
        "GptqQuantizeRef: the inverse of the damped Hessian h is not positive definite");
  }

  at::Tensor codes = at::zeros({out, in}, at::kInt);  // processing order
  at::Tensor g_idx = at::zeros({in}, at::kLong);      // processing order
  at::Tensor W_at_block_start;
  GroupParams current = groupsize == -1 ? params[0] : GroupParams{};
  double loss = 0;
  for (int64_t col = 0; col < in; ++col) {
    if (col % options.blocksize == 0) W_at_block_start = W.clone();
    if (static_groups) {
      const int64_t g = perm[col].item<int64_t>() / groupsize;
      current = params[g];
      g_idx[col] = g;
    } else if (groupsize != -1) {
      if (col % groupsize == 0) {
        // quantizer.find_params(W[:, col:col+groupsize]) on fasterquant's global W.
        params[col / groupsize] =
            FindParams(W_at_block_start.slice(1, col, col + groupsize), grid);
        current = params[col / groupsize];
      }
      g_idx[col] = col / groupsize;
    }

    const at::Tensor w_col = W.slice(1, col, col + 1);  // [out, 1]
    const at::Tensor q_codes = QuantizeCodes(w_col, current, grid);
    const at::Tensor q = DequantizeCodes(q_codes, current);
    const at::Tensor d = Hinv[col][col];
    // Loss += (w - q)^2 / d^2 / 2
    loss += ((w_col - q).pow(2) / d.pow(2) / 2).sum().item<double>();
    // err = (w - q) / d;  W[:, col:] -= outer(err, Hinv[col, col:])
    const at::Tensor err = (w_col - q) / d;
    W.slice(1, col).sub_(err * Hinv.slice(0, col, col + 1).slice(1, col));
    codes.slice(1, col, col + 1).copy_(q_codes);
  }

  // if actorder: Q = Q[:, argsort(perm)]
  const at::Tensor invperm = at::argsort(perm);
  GptqResult result;
  result.loss = loss;
  result.weight.grid = grid;
  result.weight.codes = codes.index_select(1, invperm);
  result.weight.g_idx = g_idx.index_select(0, invperm).to(at::kInt);
  std::vector<at::Tensor> scales, zeros;
  for (const GroupParams& p : params) {
    scales.push_back(p.scale);
    zeros.push_back(p.zero);
  }
  result.weight.scales = at::stack(scales, 1);  // [out, n_groups]
  result.weight.zeros = at::stack(zeros, 1);
  return result;
}

}  // namespace

StatusOr<GptqResult> GptqQuantizeRef(const at::Tensor& w, const at::Tensor& h,
                                     const GptqOptions& options) {
  RETURN_IF_ERROR(ValidateGptqInputs(w, h, options));
  try {
    return GptqQuantizeRefImpl(w, h, options);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("GptqQuantizeRef: ", e.what_without_backtrace()));
  }
}

}  // namespace bitsweep::quant
