// The quant-side registry: one line per quantization method of common/catalog.cc, binding the
// row's name to the factory its own file defines (quant/method.h).
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/arch.h"
#include "model/qwen3_config.h"
#include "quant/awq.h"
#include "quant/billm.h"
#include "quant/gptq.h"
#include "quant/method.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"

namespace bitsweep::quant {
namespace {

const std::pair<const char*, QuantizerFactory> kFactories[] = {
    {"rtn", &MakeRtnQuantizer},     {"gptq", &MakeGptqQuantizer},
    {"awq", &MakeAwqQuantizer},     {"smoothquant", &MakeSmoothQuantQuantizer},
    {"billm", &MakeBillmQuantizer},
};

}  // namespace

Quantizer::Quantizer(const MethodInfo& row, QuantConfig config, QuantGrid grid)
    : row_(&row), config_(std::move(config)), grid_(grid) {}

QuantGrid ConfigGrid(const QuantConfig& config, GridKind kind) {
  QuantGrid grid;
  grid.bits = config.wbits;
  grid.group_size = config.group_size;
  grid.kind = kind;
  return grid;
}

bool Quantizer::calibrated() const { return NeedsCalibration(config_); }

Status Quantizer::Validate(const model::Qwen3Config& config) const {
  // Every linear must accept the grid before any work starts.
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const auto& [name, in] : model::QuantizedLinearInFeatures(config, i)) {
      Status s = grid_.Validate(in);
      if (!s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.layers.", i, ".", name, ": ", s.message()));
      }
    }
  }
  return absl::OkStatus();
}

QuantizerFactory FactoryFor(const MethodInfo& row) {
  for (const auto& [name, factory] : kFactories) {
    if (std::string_view(row.name) == name) return factory;
  }
  return nullptr;
}

StatusOr<std::shared_ptr<const Quantizer>> MakeQuantizer(const QuantConfig& config) {
  ASSIGN_OR_RETURN(QuantConfig normal, NormalizeQuantConfig(config));
  const MethodInfo& row = **LookupMethod(normal.method);
  const QuantizerFactory factory = FactoryFor(row);
  if (factory == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("quant.method: ", row.name, " is not a quantization method"));
  }
  ASSIGN_OR_RETURN(QuantizerPtr q, factory(row, normal));
  return std::shared_ptr<const Quantizer>(std::move(q));
}

}  // namespace bitsweep::quant
