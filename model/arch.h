// Architecture knowledge the quantizers need, kept in one table (STYLE.md P4): which linears a
// Qwen3 decoder layer has and in which groups the layer-wise methods calibrate them.
// Algorithms receive these names, never inspect the model's structure themselves.
#pragma once

#include <string>
#include <vector>

namespace bitsweep::model {

struct DecoderLayer;

// GPTQ's true-sequential order: {k, v, q} | {o} | {up, gate} | {down}; in MoE layers the
// expert MLPs take the place of the dense MLP ({experts.*.up, experts.*.gate} | {experts.*.down})
// and the router ("mlp.gate") is not listed: it stays in full precision.
// Without true_sequential (BiLLM, GPTQ without the flag): one group of every quantised linear.
std::vector<std::vector<std::string>> SequentialGroups(const DecoderLayer& layer,
                                                       bool true_sequential);

// Every linear a weight quantizer replaces in `layer` (the groups above, flattened).
std::vector<std::string> QuantizedLinears(const DecoderLayer& layer);

}  // namespace bitsweep::model
