// BiLLM (Huang et al. 2024; Aaronhuang-778/BiLLM), docs/methods.md#billm: Hessian-based salient
// columns with order-2 residual binarisation, bell-shaped split of the non-salient weights
// with a break-point search, and GPTQ-style blocked error compensation. Masks are explicit.
//
// Upstream sources: bigptq.py (BRAGPTQ.fasterquant), binary.py (high_order_residual),
// utils/structure.py (structural_guassian_distribution), utils/autosearch.py
// (structural_searching), utils/mask.py (generate_structural_mask).
//
// Per 128-column block (the block is also the binarisation group), every output row holds three
// disjoint regions: M3 (the block's salient columns, order-2 residual binarisation: two
// (alpha, mu) pairs and two signs per weight), and the non-salient weights split by a magnitude
// break point into M1 (|T| < p) and M2 (|T| >= p), each order-1 (one (alpha, mu) pair, one sign).
// A weight of region R in row r dequantises to  mu_1 + alpha_1 s_1 [+ mu_2 + alpha_2 s_2],
// s in {-1, 0, +1} (0 only when the residual equals the row mean exactly, torch.sign semantics).
//
// Bit accounting (BillmResult):
//   salient_fraction            = sum over blocks of k_b / in   (k_b salient columns of block b)
//   salient_fraction_last_block = k_last / n_last, the r of the study's run.py, whose effective
//                                 bits are 1 + sum numel * r / sum numel over the model
//                                 (bigptq.py keeps only the last block's fraction).
//   storage_bits: the full cost per weight of storing the binarised weight,
//       sum over blocks b (n_b columns, R rows) of
//           R * n_b            one sign per weight
//         + R * k_b            the second-order sign of each salient weight
//         + n_b                salient-column bitmap (1 bit per column of the block)
//         + R * (n_b - k_b)    M1/M2 split flag of each non-salient weight
//         + R * 4 * 2 * 16     per row: (alpha, mu) in fp16 for M1, M2 and both orders of M3
//       divided by R * in. For a 128-column block that is 2 + 1 + 1/R bits; the 4 (alpha, mu)
//       pairs are counted even when a region of a row is empty.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "quant/layer_job.h"
#include "quant/method.h"

namespace bitsweep::quant {

struct BillmOptions {
  double percdamp = 0.01;
  int64_t blocksize = 128;  // also the binarisation group
  int64_t up_lim = 50;      // salient-column search: candidates 1..up_lim-1
  enum class Saliency { kHessian, kMagnitude } saliency = Saliency::kHessian;
};

struct BillmResult {
  at::Tensor weight;  // binarised weight, dequantised, [out, in] fp32
  // fasterquant's "error": sum over all weights of (w - q)^2 / d^2 / 2 with d = Hc[col, col]
  // (the diagonal of the upper Cholesky factor of H^-1), as GPTQ reports it.
  double loss = 0;
  double salient_fraction = 0;             // salient columns / all columns (whole weight)
  double salient_fraction_last_block = 0;  // what the study's run.py accounts
  double storage_bits = 0;                 // full cost per weight: signs, bitmaps, per-row alpha/mu
  // Region of each weight, [out, in] int8: 0 = M1 (|T| below the break point), 1 = M2,
  // 2 = M3 (salient column, order 2).
  at::Tensor region;
};

// w: [out, in]; h: [in, in] from HessianAccumulator.
// InvalidArgument naming the parameter for bad shapes or options (w not 2-D or not floating
// point, h not [in, in], blocksize < 1, percdamp < 0 or non-finite, up_lim < 2, non-finite h);
// FailedPrecondition when the damped h is not positive definite.
// A block narrower than up_lim searches 1..n-1 salient columns (upstream's topk would fail);
// a one-column block has no salient column.
StatusOr<BillmResult> BillmQuantize(const at::Tensor& w, const at::Tensor& h,
                                    const BillmOptions& options);

// binary.py high_order_residual with explicit masks: x [rows, cols] fp32, mask [rows, cols]
// bool, order >= 1. Repeats `order` times on r = x*mask - acc: mu = row mean of r over the
// mask, alpha = row mean of |r - mu| over the mask (both 0 for a row with no masked entry),
// acc += (sign(r - mu) * alpha + mu) * mask, with sign(0) = 0. Returns acc (0 off the mask).
StatusOr<at::Tensor> BillmHighOrderResidual(const at::Tensor& x, const at::Tensor& mask,
                                            int64_t order);

// Sequential (not true-sequential): all linears of the layer get H from one forward; each is
// binarised with BillmQuantize; then *job.xs are replaced with the binarised layer's outputs.
// MoE experts routed fewer than job.min_expert_tokens tokens use H = I (no data: saliency by
// magnitude^2, no cross-column compensation beyond the identity's), noted in their report.
// LinearReport::stats: salient_fraction, salient_fraction_last_block, storage_bits, params.
// out->summary (cumulative over all BiLLM linears reported so far, so after the last layer
// they describe the model): billm_params (sum of numel), billm_effective_bits_study
// (1 + sum numel * salient_fraction_last_block / billm_params) and billm_storage_bits
// (numel-weighted mean of storage_bits).
// keep_fp (relative linear name; mixed recipes): those linears stay in FP, unreported.
Status BillmQuantizeLayer(LayerJob& job, const BillmOptions& options, QuantizeResult* out,
                          const std::function<bool(const std::string&)>& keep_fp = nullptr);

// The "billm" row of common/catalog.cc: BillmQuantizeLayer, each layer quantized whole under
// tensor parallelism; 1 bit in blocksize-column blocks (which need not divide in_features).
StatusOr<QuantizerPtr> MakeBillmQuantizer(const MethodInfo& row, const QuantConfig& config);

}  // namespace bitsweep::quant
