// `bitsweep quantize`: flags -> options -> quant::QuantizeModel -> a Hugging Face folder.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
}

namespace bitsweep::cli {

struct QuantizeFlags {
  std::string model, out, method = "gptq", calib = "c4", data_dir, dtype = "fp32";
  int wbits = 4;
  int64_t group = 128;
  int64_t nsamples = 128, seqlen = 2048;
  uint64_t seed = 0;
  bool act_order = false, static_groups = false, no_true_sequential = false;
  bool released_code = false;
  double percdamp = 0.01;
  int64_t blocksize = 128;
};

// Registers the subcommand on `app`; returns it so main can test parsed().
CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& flags);
int RunQuantize(const QuantizeFlags& flags, const std::string& data_dir);

}  // namespace bitsweep::cli
