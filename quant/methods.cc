// The quant-side registry: one line per quantization method of common/catalog.cc, binding the
// row's name to the factory its own file defines (quant/method.h).
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/mixed_precision.h"
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

std::optional<QuantGrid> Quantizer::LinearGrid(int64_t layer, std::string_view name) const {
  if (config_.overrides.empty()) return grid_;
  const LinearPrecision p = ResolveLinearPrecision(config_, layer, name);
  if (p.keep_fp()) return std::nullopt;
  // The recipe's own precision keeps the method's grid as built (BiLLM's blocks).
  if (p.wbits == config_.wbits && p.group_size == config_.group_size) return grid_;
  QuantGrid g = grid_;
  g.bits = p.wbits;
  g.group_size = p.group_size;
  return g;
}

Status Quantizer::Validate(const model::Qwen3Config& config) const {
  RETURN_IF_ERROR(ValidateOverrideLayers(config_, config.num_hidden_layers));
  // Every linear must accept its grid before any work starts.
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    for (const auto& [name, in] : model::QuantizedLinearInFeatures(config, i)) {
      const std::optional<QuantGrid> grid = LinearGrid(i, name);
      if (!grid) continue;
      Status s = grid->Validate(in);
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
