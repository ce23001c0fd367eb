// A linear layer y = x W^T, the unit that quantization replaces and tensor parallelism shards.
//
// Conventions: the weight is [out_features, in_features] (the Hugging Face layout), inputs are
// [..., in_features]. A Linear may hold a shard of the full layer:
//   kReplicated  the whole weight; output is the full [..., out].
//   kColumn      rows [r0, r1) of W; the output is the matching slice of features (heads, or
//                MLP columns) and stays local to the rank.
//   kRow         columns [c0, c1) of W; the input is the matching feature slice and the output
//                is a partial sum that the layer's Collective all-reduces.
// An optional input hook sees (and may replace) the input before the matmul: calibration uses
// it to observe activations, methods that quantize activations to fake-quantise them. An
// optional output hook sees (and may replace) the local output after the matmul, before any
// all-reduce (the q/k/v output quantisation of such methods). Not thread-safe to mutate while
// a forward runs; concurrent forwards on an unmodified Linear are fine.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

#include "model/collective.h"

namespace bitsweep::model {

enum class ParallelStyle { kReplicated, kColumn, kRow };

class Linear {
 public:
  using InputHook = std::function<at::Tensor(const at::Tensor& x)>;

  Linear() = default;
  explicit Linear(at::Tensor weight, ParallelStyle style = ParallelStyle::kReplicated,
                  std::shared_ptr<const Collective> collective = nullptr);

  // x: [..., in_local] -> [..., out_local] (all-reduced when kRow and a collective is set).
  at::Tensor Forward(const at::Tensor& x) const;

  const at::Tensor& weight() const { return weight_; }
  // Replaces the weight. REQUIRES: same shape as the current weight; the dtype is converted to
  // the current one so a quantised (dequantised) weight drops in unchanged.
  void SetWeight(const at::Tensor& w);
  int64_t in_features() const;
  int64_t out_features() const;
  ParallelStyle style() const { return style_; }
  // The group a kRow linear all-reduces over (nullptr: none, the output stays a partial sum).
  const std::shared_ptr<const Collective>& collective() const { return collective_; }

  // Installs (or with nullptr removes) the input hook.
  void SetInputHook(InputHook hook) { hook_ = std::move(hook); }
  bool has_input_hook() const { return static_cast<bool>(hook_); }
  // Installs (or with nullptr removes) the output hook.
  void SetOutputHook(InputHook hook) { out_hook_ = std::move(hook); }
  bool has_output_hook() const { return static_cast<bool>(out_hook_); }

 private:
  at::Tensor weight_;
  ParallelStyle style_ = ParallelStyle::kReplicated;
  std::shared_ptr<const Collective> collective_;
  InputHook hook_;
  InputHook out_hook_;
};

}  // namespace bitsweep::model
