// GPTQ (Frantar et al. 2022; IST-DASLab/gptq gptq.py), docs/methods.md#gptq.
//
// HessianAccumulator keeps H = (2/N) sum x x^T over N calibration sequences exactly as
// GPTQ.add_batch does (the counter counts sequences, not tokens). GptqQuantize then quantises
// columns left to right (or by descending diag(H) with act_order), compensating each column's
// error on the not-yet-quantised columns through the upper Cholesky factor of H^-1, with lazy
// block updates of `blocksize` columns. Dead columns (diag(H) == 0) are zeroed first.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/method.h"

namespace bitsweep::quant {

class HessianAccumulator {
 public:
  // H lives on `device` (the calibration activations' device); Add moves x there.
  explicit HessianAccumulator(int64_t in_features, c10::Device device = c10::Device(c10::kCPU));
  // x: [..., in_features], one call per calibration batch of `sequences` sequences (GPTQ's
  // hooks see [batch, tokens, in] and count the batch).
  // While the rows added so far number at most in_features, they are kept (as fp32 copies)
  // instead of being folded into H: they take no more memory than H would, and much less for an
  // MoE expert routed a few dozen tokens or a down_proj calibrated on fewer tokens than its
  // 12,288 inputs. H() and Release() then replay the same Adds in the same order, so H is the
  // same bit for bit as if each had been folded in at once.
  // REQUIRES: x.size(-1) == in_features, sequences >= 1; otherwise throws c10::Error naming the
  // argument (the callers' public entry points turn it into a Status) and leaves H unchanged.
  void Add(const at::Tensor& x, int64_t sequences = 1);
  const at::Tensor& H() const;  // [in, in] fp32
  // Hands H over (to GptqQuantizeConsuming) without a copy; the accumulator is empty after.
  at::Tensor Release();
  int64_t sequences() const { return n_ + pending_sequences_; }
  // Bytes held now: H once folded, else the kept rows.
  int64_t held_bytes() const;

 private:
  struct Pending {
    at::Tensor xs;  // [tokens, in] fp32, on H's device
    int64_t sequences = 0;
  };
  void Fold(const at::Tensor& xs, int64_t sequences) const;  // add_batch on h_
  void FoldPending() const;                                  // creates h_, replays pending_

  int64_t in_ = 0;
  c10::Device device_;
  // Folding is an implementation detail of a logically const H(): mutable.
  mutable at::Tensor h_;  // undefined until folded
  mutable int64_t n_ = 0;
  mutable std::vector<Pending> pending_;
  mutable int64_t pending_rows_ = 0, pending_sequences_ = 0;
};

struct GptqOptions {
  QuantGrid grid;               // kMinMaxWithZero in the study
  double percdamp = 0.01;       // damping: H += percdamp * mean(diag H) * I
  int64_t blocksize = 128;      // lazy-update block width
  bool act_order = false;       // quantise columns by descending diag(H)
  // With act_order: groups fixed up front on the original column order (upstream's
  // static_groups) instead of contiguous groups in permuted order (the study's fork).
  bool static_groups = false;
};

struct GptqResult {
  QuantizedWeight weight;
  double loss = 0;  // sum over columns of (w - q)^2 / d^2 / 2, GPTQ's reported error
};

// w: [out, in]; h: [in, in] from HessianAccumulator. The weight is processed in fp32.
// InvalidArgument naming the parameter for bad shapes or options (see ValidateGptqInputs) or a
// non-finite h; FailedPrecondition when the damped h is not positive definite (its Cholesky
// factorisation fails: raise percdamp or calibrate on more tokens).
// With act_order, columns are sorted by descending diag(H) with a stable sort (ties keep their
// original order; upstream's torch.argsort leaves ties unspecified). With a group size and
// act_order, groups are contiguous in that order (g_idx maps each original column to its group);
// static_groups (upstream's flag, honoured with or without act_order) instead finds every group's
// params up front on the original column order, after dead columns are zeroed.
StatusOr<GptqResult> GptqQuantize(const at::Tensor& w, const at::Tensor& h,
                                  const GptqOptions& options);

// GptqQuantize, using h's storage as its working matrix instead of a copy when h is fp32,
// contiguous and on w's device (h's values are then destroyed): for a down_proj of Qwen3-8B that
// is one 604 MB [in, in] matrix fewer. The caller gives h up: pass a tensor nothing else reads
// (HessianAccumulator::Release), never a view of one. Same results as GptqQuantize.
StatusOr<GptqResult> GptqQuantizeConsuming(const at::Tensor& w, at::Tensor&& h,
                                           const GptqOptions& options);

// The argument checks GptqQuantize (and GptqQuantizeRef) run first: w 2-D and floating point,
// options.grid valid for w's in_features, h [in, in] and floating point, blocksize >= 1,
// percdamp >= 0 and finite. Each error names the parameter.
Status ValidateGptqInputs(const at::Tensor& w, const at::Tensor& h, const GptqOptions& options);

// The "gptq" row of common/catalog.cc: per decoder layer, the Hessian of each true-sequential
// group (model::SequentialGroups) from a forward of the partly quantized layer, GptqQuantize
// per linear (rows split over tensor-parallel ranks), RTN for experts routed fewer than
// min_expert_tokens tokens; the quantized layer's outputs feed the next layer.
StatusOr<QuantizerPtr> MakeGptqQuantizer(const MethodInfo& row, const QuantConfig& config);

}  // namespace bitsweep::quant
