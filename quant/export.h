// Writes a quantized model as a Hugging Face folder any Qwen3 loader runs: dequantized weights
// (safetensors in the source checkpoint's stored dtype, one shard per decoder layer plus one for
// embeddings/norm/lm_head, with model.safetensors.index.json), the source config.json and
// tokenizer files, and quantization_config.json with every parameter needed to reproduce it
// plus per-linear losses and model-level numbers.
//
// With `packed`, `<out>/packed/` is a second complete folder in the GPTQ checkpoint layout
// (quant/packed.h): quantized linears as qweight/qzeros/scales/g_idx, everything else as in the
// dequantized folder, and config.json carrying "quantization_config" {quant_method "gptq", bits,
// group_size, desc_act, sym, checkpoint_format "gptq"}. Linears that cannot be packed (bits
// other than 2/3/4/8, symmetric grids, shapes that do not fill word runs) keep their dequantized
// ".weight" there and are listed in quantization_config.json.
//
// The writer streams: WriteLayer is called as each decoder layer is finished (the quantizer's
// layer sink), so only one layer is ever held for writing. Everything goes to a temporary
// sibling folder that replaces `out_dir` only in Finish, so an interrupted run never leaves a
// half-written model under the output name.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "quant/layer_job.h"

namespace bitsweep::model {
class Qwen3Model;
}

namespace bitsweep::quant {

class QuantizedModelWriter {
 public:
  // Prepares the temporary folder. InvalidArgument when out_dir is the source folder.
  static StatusOr<std::unique_ptr<QuantizedModelWriter>> Create(const std::string& out_dir,
                                                                const std::string& source_dir,
                                                                const model::Qwen3Model& model,
                                                                bool packed);
  ~QuantizedModelWriter();  // removes the temporary folder unless Finish succeeded

  // Writes decoder layer i (materialized in `model`) and, when packing, its packed form from
  // `weights` (full HF module names).
  Status WriteLayer(const model::Qwen3Model& model, int64_t i,
                    const std::map<std::string, QuantizedWeight>& weights);
  // Writes the remaining tensors, indexes, configs, tokenizer files and
  // quantization_config.json (`recipe` plus "linears", "summary", "seconds", "packed"), then
  // moves the folder into place. REQUIRES: every layer written. When `recipe` has "overrides"
  // (a mixed recipe), the packed config.json's quantization_config gets GPTQModel's "dynamic"
  // block: "+:^<module>$": {bits, group_size} for each packed linear off the default bits or
  // group, "-:^<module>$": {} for each linear stored unpacked; LoadModelForEval reads it.
  Status Finish(const model::Qwen3Model& model, const QuantizeResult& result,
                const nlohmann::json& recipe);

  // Tensor parallelism: WriteLayer and Finish gather whole tensors from every rank
  // (Qwen3Model::Full*Tensors). Rank 0 writes; every other rank calls these at the same points
  // to take part in the same gathers.
  static void FollowLayer(const model::Qwen3Model& model, int64_t i);
  static void FollowFinish(const model::Qwen3Model& model);

 private:
  QuantizedModelWriter() = default;
  struct Shard {
    std::string file;
    std::vector<std::string> names;
    uint64_t bytes = 0;
  };
  // A tensor to write, made only when its turn comes (a layer's stored-dtype copies and packed
  // words are not all held at once).
  struct LazyTensor {
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
    std::function<StatusOr<at::Tensor>()> make;
  };
  Status WriteShard(const std::string& dir, int64_t index, const std::vector<LazyTensor>& tensors,
                    std::vector<Shard>* shards);
  Status WriteIndex(const std::string& dir, const std::vector<Shard>& shards);

  std::string out_dir_, tmp_dir_, source_dir_;
  at::ScalarType stored_ = at::kFloat;
  int64_t num_shards_ = 0;
  bool packed_ = false;
  bool finished_ = false;
  std::vector<Shard> shards_, packed_shards_;
  std::vector<bool> written_;
  nlohmann::json packed_info_ = nlohmann::json::object();  // per-linear packing outcome
  std::map<std::string, int64_t> packed_counts_;
  // Each packed module's bits and group size (mixed recipes: the config's "dynamic" block).
  std::map<std::string, std::pair<int, int64_t>> packed_grids_;
  std::vector<std::string> unpacked_modules_;  // decoder linears stored as plain weights
};

// The per-layer view of a quantization_config.json (the object the writer above stores):
// {"layer", "loss" (the sum of its linears' losses), "linears", "notes" (linears with a note: a
// fallback for too few calibration tokens, a skipped search), "min_calib_tokens" (-1: none
// recorded)} per decoder layer, in layer order, from its "linears"; an empty array without them.
nlohmann::json LayerLosses(const nlohmann::json& quantization_config);

// Non-streaming form: writes every layer of an in-memory model from result.weights.
Status WriteQuantizedModel(const std::string& out_dir, const std::string& source_dir,
                           const model::Qwen3Model& model, const QuantizeResult& result,
                           const nlohmann::json& recipe, bool packed = false);

}  // namespace bitsweep::quant
