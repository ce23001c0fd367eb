#include "model/tiny_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "model/safetensors.h"
#include "model/tokenizer.h"

namespace bitsweep::model {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards.
std::vector<std::string> ByteSymbols() {
  std::vector<int> printable;
  for (int b = '!'; b <= '~'; ++b) printable.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) printable.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) printable.push_back(b);
  std::vector<int> code(256, -1);
  for (int b : printable) code[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    if (code[b] < 0) code[b] = next++;
  }
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    const int c = code[b];
    std::string s;
    if (c < 0x80) {
      s.push_back(static_cast<char>(c));
    } else {
      s.push_back(static_cast<char>(0xC0 | (c >> 6)));
      s.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
    out[b] = s;
  }
  return out;
}

StatusOr<at::ScalarType> StoredDType(const std::string& name) {
  if (name == "f32" || name == "fp32") return at::kFloat;
  if (name == "bf16") return at::kBFloat16;
  if (name == "f16" || name == "fp16") return at::kHalf;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown stored dtype \"", name, "\" (expected fp32, bf16 or fp16)"));
}

}  // namespace

std::string ByteLevelSymbol(uint8_t b) {
  static const std::vector<std::string> symbols = ByteSymbols();
  return symbols[b];
}

Qwen3Config TinyConfig(const TinyModelOptions& o, int64_t vocab_size) {
  Qwen3Config c;
  c.model_type = o.moe ? "qwen3_moe" : "qwen3";
  c.architectures = {o.moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"};
  c.vocab_size = vocab_size;
  c.hidden_size = o.hidden_size;
  c.intermediate_size = o.intermediate_size;
  c.num_hidden_layers = o.num_layers;
  c.num_attention_heads = o.num_heads;
  c.num_key_value_heads = o.num_kv_heads;
  c.head_dim = o.head_dim;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.tie_word_embeddings = o.tie_word_embeddings;
  c.torch_dtype = o.dtype == "bf16"                       ? "bfloat16"
                  : o.dtype == "fp16" || o.dtype == "f16" ? "float16"
                                                          : "float32";
  if (o.moe) {
    c.num_experts = o.num_experts;
    c.num_experts_per_tok = o.num_experts_per_tok;
    c.moe_intermediate_size = o.moe_intermediate_size;
    c.norm_topk_prob = o.norm_topk_prob;
    c.decoder_sparse_step = 1;
    c.router_aux_loss_coef = 0.001;
  }
  return c;
}

namespace {

// One random tensor of a checkpoint, in the order the generator draws them.
struct RandomTensor {
  std::string name;
  std::vector<int64_t> shape;
  double std;
  bool norm;  // 1 + N(0, std) instead of N(0, std)
};

std::vector<RandomTensor> RandomTensorPlan(const Qwen3Config& c) {
  std::vector<RandomTensor> plan;
  auto normal = [&](std::string name, std::vector<int64_t> shape, double std) {
    plan.push_back({std::move(name), std::move(shape), std, false});
  };
  auto norm = [&](std::string name, int64_t n) { plan.push_back({std::move(name), {n}, 0.1, true}); };
  const int64_t H = c.hidden_size, hd = c.head_dim;
  normal("model.embed_tokens.weight", {c.vocab_size, H}, 0.02);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    norm(p + "input_layernorm.weight", H);
    norm(p + "post_attention_layernorm.weight", H);
    norm(p + "self_attn.q_norm.weight", hd);
    norm(p + "self_attn.k_norm.weight", hd);
    normal(p + "self_attn.q_proj.weight", {c.q_dim(), H}, 0.02);
    normal(p + "self_attn.k_proj.weight", {c.kv_dim(), H}, 0.02);
    normal(p + "self_attn.v_proj.weight", {c.kv_dim(), H}, 0.02);
    normal(p + "self_attn.o_proj.weight", {H, c.q_dim()}, 0.02);
    auto mlp = [&](const std::string& q, int64_t width) {
      normal(q + "gate_proj.weight", {width, H}, 0.02);
      normal(q + "up_proj.weight", {width, H}, 0.02);
      normal(q + "down_proj.weight", {H, width}, 0.02);
    };
    if (c.IsMoeLayer(i)) {
      // A wider router init than 0.02 so routing is decisive and top-k ties do not occur.
      normal(p + "mlp.gate.weight", {c.num_experts, H}, 0.5);
      for (int64_t e = 0; e < c.num_experts; ++e) {
        mlp(absl::StrCat(p, "mlp.experts.", e, "."), c.moe_intermediate_size);
      }
    } else {
      mlp(p + "mlp.", c.intermediate_size);
    }
  }
  norm("model.norm.weight", H);
  if (!c.tie_word_embeddings) normal("lm_head.weight", {c.vocab_size, H}, 0.02);
  return plan;
}

// The next tensor of the plan from the generator (fp32).
at::Tensor Draw(const RandomTensor& t, at::Generator& gen) {
  at::Tensor x = at::normal(0.0, t.std, t.shape, gen, at::TensorOptions().dtype(at::kFloat));
  return t.norm ? 1.0 + x : x;
}

// config.json with torch_dtype naming the stored dtype.
Status WriteConfig(const std::string& out_dir, const Qwen3Config& config, at::ScalarType stored) {
  Qwen3Config c = config;
  c.torch_dtype = stored == at::kBFloat16 ? "bfloat16" : stored == at::kHalf ? "float16" : "float32";
  std::ofstream out(out_dir + "/config.json");
  out << c.ToJson();
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(out_dir, "/config.json: cannot write"));
  return absl::OkStatus();
}

}  // namespace

std::map<std::string, at::Tensor> RandomQwen3Weights(const Qwen3Config& c, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  std::map<std::string, at::Tensor> w;
  for (const RandomTensor& t : RandomTensorPlan(c)) w[t.name] = Draw(t, gen);
  return w;
}

std::string ByteLevelTokenizerJson(
    const std::vector<std::pair<std::string, std::string>>& merges) {
  const std::vector<std::string> bytes = ByteSymbols();
  json vocab = json::object();
  int id = 0;
  for (const std::string& s : bytes) vocab[s] = id++;
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    const std::string merged = a + b;
    if (!vocab.contains(merged)) vocab[merged] = id++;
    merge_list.push_back({a, b});
  }
  const std::string qwen2_regex =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       json::array({{{"id", id},
                     {"content", "<|endoftext|>"},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}}})},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", qwen2_regex}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"},
                       {"add_prefix_space", false},
                       {"trim_offsets", false},
                       {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"decoder",
       {{"type", "ByteLevel"},
        {"add_prefix_space", false},
        {"trim_offsets", false},
        {"use_regex", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", ""},
        {"end_of_word_suffix", ""},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  return tok.dump(1) + "\n";
}

Status WriteModelFolder(const std::string& out_dir, const Qwen3Config& config,
                        const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                        const std::string& dtype, uint64_t max_shard_bytes) {
  ASSIGN_OR_RETURN(at::ScalarType st, StoredDType(dtype));
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  std::vector<std::pair<std::string, at::Tensor>> stored;
  for (const auto& [name, t] : tensors) {
    at::Tensor x = t.detach();
    if (x.is_floating_point()) x = x.to(st);
    stored.push_back({name, x.contiguous()});
  }
  WriteOptions wo;
  wo.max_shard_bytes = max_shard_bytes;
  RETURN_IF_ERROR(WriteCheckpoint(out_dir, stored, wo));
  return WriteConfig(out_dir, config, st);
}

Status WriteTinyModel(const std::string& out_dir, const TinyModelOptions& o) {
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir, ": cannot create: ", ec.message()));
  const std::string tok_path = out_dir + "/tokenizer.json";
  if (o.tokenizer.empty()) {
    std::ofstream(tok_path) << ByteLevelTokenizerJson({});
  } else {
    const fs::path src = fs::is_directory(o.tokenizer) ? fs::path(o.tokenizer) / "tokenizer.json"
                                                        : fs::path(o.tokenizer);
    fs::copy_file(src, tok_path, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat(src.string(), ": ", ec.message()));
    const fs::path cfg = src.parent_path() / "tokenizer_config.json";
    if (fs::exists(cfg)) {
      fs::copy_file(cfg, out_dir + "/tokenizer_config.json", fs::copy_options::overwrite_existing,
                    ec);
    }
  }
  ASSIGN_OR_RETURN(auto tokenizer, Tokenizer::Load(tok_path));
  int64_t vocab = o.vocab_size;
  if (vocab == 0) vocab = (tokenizer->VocabSize() + 63) / 64 * 64;
  if (vocab < tokenizer->VocabSize()) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size ", vocab,
                                                   " is smaller than the tokenizer's ",
                                                   tokenizer->VocabSize()));
  }
  Qwen3Config config = TinyConfig(o, vocab);
  RETURN_IF_ERROR(config.Validate());
  ASSIGN_OR_RETURN(at::ScalarType stored, StoredDType(o.dtype));
  // One tensor in memory at a time, so any shape can be written (an 8B-shaped checkpoint on a
  // machine with less memory than it): the files are laid out in name order, as
  // WriteModelFolder writes RandomQwen3Weights, and filled in the generator's order, so the
  // bytes are the same as that.
  const std::vector<RandomTensor> plan = RandomTensorPlan(config);
  std::vector<size_t> by_name(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) by_name[i] = i;
  std::sort(by_name.begin(), by_name.end(),
            [&](size_t a, size_t b) { return plan[a].name < plan[b].name; });
  std::vector<PlannedTensor> layout;
  std::vector<size_t> layout_of(plan.size());
  for (size_t i : by_name) {
    layout_of[i] = layout.size();
    layout.push_back({plan[i].name, stored, plan[i].shape});
  }
  std::vector<size_t> order;  // layout indices in the generator's order
  for (size_t i = 0; i < plan.size(); ++i) order.push_back(layout_of[i]);
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  size_t next = 0;  // plan entries are drawn strictly in order
  WriteOptions wo;
  wo.max_shard_bytes = o.max_shard_bytes;
  RETURN_IF_ERROR(WriteCheckpointStreamed(
      out_dir, layout, order,
      [&](size_t) -> StatusOr<at::Tensor> { return Draw(plan[next++], gen); }, wo));
  return WriteConfig(out_dir, config, stored);
}

}  // namespace bitsweep::model
