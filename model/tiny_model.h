// Deterministic, randomly initialised Qwen3 checkpoints in the real Hugging Face layout
// (config.json, safetensors shards + index, tokenizer.json), for tests, benchmarks and the demo.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/qwen3_config.h"

namespace bitsweep::model {

struct TinyModelOptions {
  bool moe = false;
  uint64_t seed = 0;
  std::string dtype = "fp32";  // stored dtype: fp32, bf16 or fp16 (also f32, f16)
  int64_t hidden_size = 64;
  int64_t intermediate_size = 128;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 16;
  int64_t num_experts = 8;            // MoE only
  int64_t num_experts_per_tok = 2;    // MoE only
  int64_t moe_intermediate_size = 32; // MoE only
  bool norm_topk_prob = true;         // MoE only
  bool tie_word_embeddings = true;
  // 0: the tokenizer's vocabulary size rounded up to a multiple of 64 (HF pads likewise).
  int64_t vocab_size = 0;
  // A directory or tokenizer.json to copy; empty = the built-in byte-level tokenizer.
  std::string tokenizer;
  // Shard the weights into files of about this many bytes (0 = one file).
  uint64_t max_shard_bytes = 0;
};

// The config a TinyModelOptions describes, with `vocab_size` resolved.
Qwen3Config TinyConfig(const TinyModelOptions& options, int64_t vocab_size);

// Random weights in HF naming, fp32: linears and embeddings ~ N(0, 0.02) (HF's
// initializer_range), norm weights ~ 1 + N(0, 0.1) so that tests see them used.
std::map<std::string, at::Tensor> RandomQwen3Weights(const Qwen3Config& config, uint64_t seed);

// The GPT-2 byte-to-unicode symbol of byte `b` as UTF-8 ("Ġ" for a space, "a" for 'a').
std::string ByteLevelSymbol(uint8_t b);

// tokenizer.json for a byte-level BPE over the 256 byte symbols plus `merges` (pairs of token
// strings in the byte-to-unicode alphabet, in rank order) and "<|endoftext|>" as the last id.
// The pre-tokenizer is the Qwen2 regex, as in Qwen3's own tokenizer.json.
std::string ByteLevelTokenizerJson(const std::vector<std::pair<std::string, std::string>>& merges);

// Writes config.json, weights and tokenizer.json into `out_dir`.
Status WriteTinyModel(const std::string& out_dir, const TinyModelOptions& options);

// Writes `config` and `tensors` as a Hugging Face model folder, converting floating-point
// tensors to `dtype` (fp32, bf16 or fp16; f32 and f16 also accepted). Used by WriteTinyModel and
// the trainer.
Status WriteModelFolder(const std::string& out_dir, const Qwen3Config& config,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::string& dtype, uint64_t max_shard_bytes);

}  // namespace bitsweep::model
