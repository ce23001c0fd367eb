// BiLLM (Huang et al. 2024; Aaronhuang-778/BiLLM), METHODS.md §2.6: Hessian-based salient
// columns with order-2 residual binarisation, bell-shaped split of the non-salient weights
// with a break-point search, and GPTQ-style blocked error compensation. Masks are explicit.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "common/status.h"
#include "quant/layer_job.h"

namespace bitsweep::quant {

struct BillmOptions {
  double percdamp = 0.01;
  int64_t blocksize = 128;  // also the binarisation group
  int64_t up_lim = 50;      // salient-column search: candidates 1..up_lim-1
  enum class Saliency { kHessian, kMagnitude } saliency = Saliency::kHessian;
};

struct BillmResult {
  at::Tensor weight;               // binarised weight, dequantised, [out, in] fp32
  double loss = 0;                 // sum of the compensated errors, as GPTQ reports it
  double salient_fraction = 0;     // salient columns / all columns (whole weight)
  double salient_fraction_last_block = 0;  // what the study's run.py accounts
  double storage_bits = 0;         // full cost per weight: signs, bitmaps, per-row alpha/mu
};

// w: [out, in]; h: [in, in] from HessianAccumulator.
StatusOr<BillmResult> BillmQuantize(const at::Tensor& w, const at::Tensor& h,
                                    const BillmOptions& options);

// Sequential (not true-sequential): all linears of the layer from one forward; replaces
// *job.xs with the binarised layer's outputs.
Status BillmQuantizeLayer(LayerJob& job, const BillmOptions& options, QuantizeResult* out);

}  // namespace bitsweep::quant
