#include "model/linear.h"

#include <ATen/ATen.h>

#include <sstream>
#include <stdexcept>

namespace bitsweep::model {

Linear::Linear(at::Tensor weight, ParallelStyle style, std::shared_ptr<const Collective> collective)
    : weight_(std::move(weight)), style_(style), collective_(std::move(collective)) {}

at::Tensor Linear::Forward(const at::Tensor& x) const {
  at::Tensor y = hook_ ? at::matmul(hook_(x), weight_.t()) : at::matmul(x, weight_.t());
  if (out_hook_) y = out_hook_(y);
  if (style_ == ParallelStyle::kRow && collective_ && collective_->world_size() > 1) {
    collective_->AllReduceSum(y);
  }
  return y;
}

void Linear::SetWeight(const at::Tensor& w) {
  if (!w.sizes().equals(weight_.sizes())) {
    std::ostringstream os;
    os << "Linear::SetWeight: shape " << w.sizes() << " does not match " << weight_.sizes();
    throw std::invalid_argument(os.str());
  }
  weight_ = w.to(weight_.device(), weight_.scalar_type()).contiguous();
}

int64_t Linear::in_features() const { return weight_.size(1); }
int64_t Linear::out_features() const { return weight_.size(0); }

}  // namespace bitsweep::model
