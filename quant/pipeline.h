// One quantization as `bitsweep quantize` and the workers run it: a model folder, a method and
// its options -> a Hugging Face folder (dequantized weights, quantization_config.json with the
// full recipe, and for weight-only methods at 2/3/4/8 bits the packed GPTQ layout in
// <out>/packed). Streams: one decoder layer in memory at a time; the output folder appears
// atomically at the end. Parameters are validated before any work, errors name the parameter.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/status.h"

namespace bitsweep::model {
class Collective;
}  // namespace bitsweep::model

namespace bitsweep::quant {

struct QuantizeRequest {
  // Source folder, output folder, data folder for c4/wikitext2 calibration.
  std::string model, out, method = "gptq", calib, data_dir, dtype = "fp32";
  int wbits = 4;
  int abits = 8;
  int64_t group = 128;
  // 0 / -1: the method's default (METHODS.md §1.3), resolved in QuantizeFolder.
  int64_t nsamples = 0, seqlen = 0;
  int64_t seed = -1;
  bool act_order = false, static_groups = false, no_true_sequential = false;
  bool released_code = false, no_packed = false;
  double percdamp = 0.01;
  int64_t blocksize = 128;
  double alpha = 0.5;
  bool qkv_output = false;
  int awq_n_grid = 20;
  bool awq_duo_scaling = false, awq_no_clip = false;
  double awq_max_shrink = 0.5;
  int64_t awq_clip_tokens = 512;
  std::string billm_saliency = "hessian";
  int64_t billm_up_lim = 50;
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
