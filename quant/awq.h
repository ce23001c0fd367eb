// AWQ (Lin et al. 2023; mit-han-lab/llm-awq), METHODS.md §2.4: activation-aware per-channel
// scale search on the FP layer's cached inputs, clip search, then the min-max (kMinMax) grid.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "quant/grid.h"
#include "quant/layer_job.h"

namespace bitsweep::quant {

struct AwqOptions {
  int n_grid = 20;              // ratios 0, 1/n_grid, ..., (n_grid-1)/n_grid
  bool duo_scaling = false;     // AutoAWQ's x^r / w^(1-r) form instead of llm-awq's x^r
  bool clip = true;             // run the clip search (auto_clip)
  double max_shrink = 0.5;      // clip search: shrink steps 0 .. max_shrink*n_grid - 1
  int64_t clip_tokens = 512;    // clip search: tokens subsampled (n_sample_token)
  // v_proj -> o_proj scaling under GQA with the scale shared by the query heads of each kv
  // group (faithful default). false reproduces llm-awq/Q3Q: skipped unless v.shape == o.shape.
  bool scale_v_to_o = true;
};

// Quantizes every linear of job's layer with AWQ on the grid (its kind is forced to kMinMax);
// replaces *job.xs with the FP layer's outputs.
Status AwqQuantizeLayer(LayerJob& job, const QuantGrid& grid, const AwqOptions& options,
                        QuantizeResult* out);

}  // namespace bitsweep::quant
