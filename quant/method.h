// The quant side of a method's catalog row (common/catalog.h): its typed options, parsed once
// from the row's option map, and its per-layer entry point. QuantizeModel drives any Quantizer
// layer by layer without knowing which method it is; QuantizeFolder writes its Recipe() into
// quantization_config.json. Each method implements one subclass in its own file (quant/rtn.cc,
// quant/gptq.cc, ...) and quant/methods.cc binds the row's name to its factory.
// Quantizers are immutable after construction and may be shared between threads.
#pragma once

#include <memory>
#include <optional>
#include <string_view>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/catalog.h"
#include "common/job_spec.h"
#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"

namespace bitsweep::model {
struct Qwen3Config;
}  // namespace bitsweep::model

namespace bitsweep::quant {

class Quantizer {
 public:
  // `config` normalised for `row`; `grid` what the linears are stored on.
  Quantizer(const MethodInfo& row, QuantConfig config, QuantGrid grid);
  virtual ~Quantizer() = default;

  const MethodInfo& row() const { return *row_; }
  // Normalised (NormalizeQuantConfig): every option of the method present.
  const QuantConfig& config() const { return config_; }
  // The grid the linears are stored on (bits, group size, kind); BiLLM: 1 bit, its blocks.
  // Under a mixed recipe, the recipe's own grid (LinearGrid gives each linear's).
  const QuantGrid& grid() const { return grid_; }
  // The grid of linear `name` (relative or full HF name) of decoder layer `layer` under the
  // recipe's overrides (common/mixed_precision.h): grid() with the linear's bits and group;
  // nullopt keeps the linear in full precision. grid() for every linear of a uniform recipe.
  std::optional<QuantGrid> LinearGrid(int64_t layer, std::string_view name) const;
  // Whether the recipe has overrides.
  bool mixed() const { return !config_.overrides.empty(); }
  // Whether QuantizeModel must be given calibration samples (NeedsCalibration).
  bool calibrated() const;

  // InvalidArgument naming the parameter (or the first linear whose in_features the group size
  // does not divide) for options that cannot run on a model of this config. Needs no weights.
  // Default: the overrides name layers of the model and each linear's grid accepts it.
  virtual Status Validate(const model::Qwen3Config& config) const;
  // Quantizes decoder layer job.index (the contract of quant/layer_job.h).
  virtual Status QuantizeLayer(LayerJob& job, QuantizeResult* out) const = 0;
  // Whether QuantizeLayer only reads the linears' weights (converting each one itself) and
  // never runs the layer. The driver may then leave the weights memory-mapped in the
  // checkpoint's dtype (model::LoadOptions::stored_linear_weights) when the compute dtype
  // holds them exactly, so a layer costs no anonymous memory. Default: false.
  virtual bool reads_weights_only() const { return false; }
  // The method's own block of quantization_config.json (its options as the recipe names them),
  // or null when it has none.
  virtual nlohmann::json Recipe() const = 0;

 private:
  const MethodInfo* row_;
  QuantConfig config_;
  QuantGrid grid_;
};

// A Quantizer holding its method's typed options (parsed once from the row's option map).
template <typename Options>
class QuantizerWith : public Quantizer {
 public:
  QuantizerWith(const MethodInfo& row, const QuantConfig& config, QuantGrid grid, Options options)
      : Quantizer(row, config, grid), options_(std::move(options)) {}
  const Options& options() const { return options_; }

 private:
  Options options_;
};

// The grid of a normalised config: its weight bits and group size, on `kind`.
QuantGrid ConfigGrid(const QuantConfig& config, GridKind kind);

// A method's entry: builds its Quantizer from a normalised config of its row.
using QuantizerPtr = std::unique_ptr<const Quantizer>;
using QuantizerFactory = StatusOr<QuantizerPtr> (*)(const MethodInfo& row,
                                                    const QuantConfig& config);

// Validates `config` against the catalog (NormalizeQuantConfig: bits, group size, options and
// their ranges) and builds the method's Quantizer. The fp row has none (InvalidArgument).
StatusOr<std::shared_ptr<const Quantizer>> MakeQuantizer(const QuantConfig& config);

// The factory bound to a catalog row's name; nullptr for the fp row.
QuantizerFactory FactoryFor(const MethodInfo& row);

}  // namespace bitsweep::quant
