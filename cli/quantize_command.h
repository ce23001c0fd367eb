// `bitsweep quantize`: flags -> options -> quant::QuantizeModel (streaming, one decoder layer in
// memory at a time) -> a Hugging Face folder (+ the packed GPTQ layout in <out>/packed).
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace bitsweep::cli {

struct QuantizeFlags {
  std::string model, out, method = "gptq", calib, data_dir, dtype = "fp32";
  int wbits = 4;
  int abits = 8;
  int64_t group = 128;
  // 0 / -1: the method's default (METHODS.md §1.3), resolved in RunQuantize.
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
};

// Registers the subcommand on `app`; returns it so main can test parsed().
CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& flags);
int RunQuantize(const QuantizeFlags& flags, const std::string& data_dir);

}  // namespace bitsweep::cli
