// `bitsweep quantize`: flags -> options -> quant::QuantizeModel (streaming, one decoder layer in
// memory at a time) -> a Hugging Face folder (+ the packed GPTQ layout in <out>/packed).
#pragma once

#include <string>

#include "quant/pipeline.h"

namespace CLI {
class App;
}

namespace bitsweep::cli {

using QuantizeFlags = quant::QuantizeRequest;

// Registers the subcommand on `app`; returns it so main can test parsed().
CLI::App* AddQuantizeCommand(CLI::App& app, QuantizeFlags& flags);
int RunQuantize(const QuantizeFlags& flags, const std::string& data_dir);

}  // namespace bitsweep::cli
