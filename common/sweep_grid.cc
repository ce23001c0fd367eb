// Counting a sweep's grid without expanding it (common/sweep.h: SweepGridSize,
// GridConfigurations); every product saturates at INT64_MAX instead of overflowing.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "common/mixed_precision.h"
#include "common/sweep.h"

namespace bitsweep {

namespace {

constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max();

int64_t SaturatingTimes(int64_t a, int64_t b) {
  return a != 0 && b > kMaxCount / a ? kMaxCount : a * b;
}

}  // namespace

int64_t GridConfigurations(const SweepSpec& spec) {
  int64_t configs = spec.baseline ? 1 : 0;
  for (const SweepMethod& m : spec.methods) {
    const int64_t per_method =
        SaturatingTimes(SaturatingTimes(static_cast<int64_t>(m.wbits.size()),
                                        std::max<int64_t>(1, static_cast<int64_t>(m.abits.size()))),
                        std::max<int64_t>(1, static_cast<int64_t>(m.group.size())));
    configs = per_method > kMaxCount - configs ? kMaxCount : configs + per_method;
  }
  if (spec.sensitivity) {
    // Counted before any config.json is read: at most kMaxSensitivityLayers layers.
    const int64_t units = spec.sensitivity->unit == SweepSensitivity::Unit::kLayer
                              ? kMaxSensitivityLayers
                              : static_cast<int64_t>(LinearTypes().size());
    configs = units > kMaxCount - configs ? kMaxCount : configs + units;
  }
  return configs;
}

int64_t SweepGridSize(const SweepSpec& spec) {
  return SaturatingTimes(
      SaturatingTimes(static_cast<int64_t>(spec.models.size()), GridConfigurations(spec)),
      static_cast<int64_t>(spec.tasks.size()));
}

}  // namespace bitsweep
