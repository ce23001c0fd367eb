// One quantization as `bitsweep quantize` and the workers run it: a model folder, a method and
// its options -> a Hugging Face folder (dequantized weights, quantization_config.json with the
// full recipe, and for weight-only methods at 2/3/4/8 bits the packed GPTQ layout in
// <out>/packed). Streams: one decoder layer in memory at a time; the output folder appears
// atomically at the end. Parameters are validated against the method's catalog row before any
// work; errors name the parameter as the `bitsweep quantize` flag (--wbits, --awq-n-grid).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/status.h"

namespace bitsweep::model {
class Collective;
}  // namespace bitsweep::model

namespace bitsweep::quant {

struct QuantizeRequest {
  // Source folder, output folder, data folder for c4/wikitext2 calibration.
  std::string model, out, data_dir;
  std::string method = "gptq";  // a quantization method of common/catalog.h
  // Unset: the method's catalog row (default_wbits, default_abits, default_group_size). abits
  // and group may be set only where the row takes them.
  std::optional<int> wbits, abits;
  std::optional<int64_t> group;  // -1 = per channel
  // The method's options by catalog name ("act_order" -> "true"), as given; unset ones take the
  // row's defaults, options of other methods are an error.
  std::map<std::string, std::string> options;
  // Mixed precision (common/mixed_precision.h); empty: every linear at wbits / group.
  std::vector<QuantOverride> overrides;
  // Calibration; unset: the method's defaults
  // (docs/study-protocol.md#1-calibration-defaults-per-method). An error for a method that uses no
  // calibration data.
  std::optional<std::string> calib;
  std::optional<int64_t> nsamples, seqlen, seed;
  // Compute dtype of the calibration forward: fp32, bf16, or auto (model::ResolveComputeDType).
  std::string dtype = "auto";
  // Where the model and the method run: cpu, cuda, cuda:N or auto (model/device.h).
  std::string device = "auto";
  bool no_packed = false;
  // Tensor-parallel ranks the caller launches (cli/tp_run.h); QuantizeFolder checks that its
  // group has this many. The result does not depend on it.
  int tp = 1;
};

struct QuantizeFolderReport {
  int64_t linears = 0;
  int wbits = 0;
  int64_t group = 0;
  bool packed = false;
  double seconds = 0;
  std::map<std::string, double> summary;  // method-specific totals (effective bits, ...)
};

// Called after each decoder layer with (layers done, layers total).
using LayerProgress = std::function<void(int64_t, int64_t)>;

// `tp`: run as one rank of a tensor-parallel group (quant/tensor_parallel.h); every rank calls
// QuantizeFolder with the same request, rank 0 writes the output folder. nullptr: one process.
StatusOr<QuantizeFolderReport> QuantizeFolder(
    const QuantizeRequest& request, const LayerProgress& progress = nullptr,
    std::shared_ptr<const model::Collective> tp = nullptr);

}  // namespace bitsweep::quant
