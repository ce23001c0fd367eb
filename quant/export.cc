#include "quant/export.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/safetensors.h"
#include "quant/packed.h"

namespace bitsweep::quant {

namespace fs = std::filesystem;

namespace {

constexpr const char* kPackedDir = "packed";

std::string ShardName(int64_t k, int64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05lld-of-%05lld.safetensors", static_cast<long long>(k),
                static_cast<long long>(n));
  return buf;
}

Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.close();
  if (!f) return absl::InternalError(absl::StrCat(path.string(), ": cannot write"));
  return absl::OkStatus();
}

Status CopyIfPresent(const fs::path& src, const fs::path& dst) {
  if (!fs::exists(src)) return absl::OkStatus();
  std::error_code ec;
  fs::copy_file(src, dst, fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat(src.string(), ": copy failed: ", ec.message()));
  return absl::OkStatus();
}

at::Tensor Stored(const at::Tensor& t, at::ScalarType st) {
  at::Tensor x = t.detach();
  if (x.is_floating_point()) x = x.to(st);
  return x.contiguous();
}

// The tensors outside the decoder layers (embeddings, model.norm, lm_head), which no method
// changes, in the order FullGlobalTensors gives them and in the stored dtype. In one process,
// when the compute dtype holds the stored one exactly (fp32, or bf16 from bf16), they are the
// source checkpoint's own mapped tensors: the same bytes as the model's converted back, without
// taking anonymous memory (an 8B model's fp32 embeddings and lm_head are 5 GB). Otherwise, and
// under tensor parallelism (FullGlobalTensors is collective), the model's.
std::vector<std::pair<std::string, at::Tensor>> ExportGlobals(const model::Qwen3Model& model,
                                                              const std::string& source_dir,
                                                              at::ScalarType stored) {
  const bool exact = model.dtype() == model::ComputeDType::kFloat32 || stored == at::kBFloat16;
  if (model.tp()->world_size() == 1 && exact) {
    std::vector<std::string> names = {"model.embed_tokens.weight", "model.norm.weight"};
    if (!model.config().tie_word_embeddings) names.push_back("lm_head.weight");
    auto ck = model::Checkpoint::Open(source_dir);
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const std::string& name : names) {
      if (!ck.ok() || !(*ck)->Has(name)) break;
      auto t = (*ck)->Load(name);
      if (!t.ok() || t->scalar_type() != stored) break;
      out.push_back({name, *t});
    }
    if (out.size() == names.size()) return out;
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : model.FullGlobalTensors()) out.push_back({name, Stored(t, stored)});
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<QuantizedModelWriter>> QuantizedModelWriter::Create(
    const std::string& out_dir, const std::string& source_dir, const model::Qwen3Model& model,
    bool packed) {
  std::error_code ec;
  if (out_dir.empty()) return absl::InvalidArgumentError("--out: empty output folder");
  if (fs::exists(out_dir) && fs::exists(source_dir) && fs::equivalent(out_dir, source_dir, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out ", out_dir, " is the source model folder; choose another folder"));
  }
  auto w = std::unique_ptr<QuantizedModelWriter>(new QuantizedModelWriter());
  w->out_dir_ = fs::path(out_dir).lexically_normal().string();
  while (w->out_dir_.size() > 1 && w->out_dir_.back() == '/') w->out_dir_.pop_back();
  w->tmp_dir_ = absl::StrCat(w->out_dir_, ".partial-", getpid());
  w->source_dir_ = source_dir;
  const std::string& td = model.config().torch_dtype;
  w->stored_ = td == "bfloat16" ? at::kBFloat16 : td == "float16" ? at::kHalf : at::kFloat;
  w->num_shards_ = model.num_layers() + 1;
  w->packed_ = packed;
  w->written_.assign(model.num_layers(), false);
  fs::remove_all(w->tmp_dir_, ec);
  fs::create_directories(fs::path(w->tmp_dir_) / (packed ? kPackedDir : ""), ec);
  if (ec) {
    return absl::InternalError(absl::StrCat(w->tmp_dir_, ": cannot create: ", ec.message()));
  }
  return w;
}

QuantizedModelWriter::~QuantizedModelWriter() {
  if (!finished_ && !tmp_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(tmp_dir_, ec);
  }
}

Status QuantizedModelWriter::WriteShard(const std::string& dir, int64_t index,
                                        const std::vector<LazyTensor>& tensors,
                                        std::vector<Shard>* shards) {
  Shard s;
  s.file = ShardName(index, num_shards_);
  std::vector<model::PlannedTensor> layout;
  layout.reserve(tensors.size());
  for (const LazyTensor& t : tensors) {
    s.names.push_back(t.name);
    int64_t numel = 1;
    for (int64_t d : t.shape) numel *= d;
    s.bytes += static_cast<uint64_t>(numel) * c10::elementSize(t.dtype);
    layout.push_back({t.name, t.dtype, t.shape});
  }
  // Tensors of a model on a GPU are written from host copies, one tensor at a time.
  RETURN_IF_ERROR(model::WriteSafetensorsFileStreamed(
      (fs::path(dir) / s.file).string(), layout,
      [&tensors](size_t k) { return tensors[k].make(); }));
  shards->push_back(std::move(s));
  return absl::OkStatus();
}

Status QuantizedModelWriter::WriteIndex(const std::string& dir, const std::vector<Shard>& shards) {
  nlohmann::json map = nlohmann::json::object();
  uint64_t total = 0;
  for (const auto& s : shards) {
    total += s.bytes;
    for (const auto& n : s.names) map[n] = s.file;
  }
  nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", map}};
  return WriteText(fs::path(dir) / "model.safetensors.index.json", index.dump(2) + "\n");
}

Status QuantizedModelWriter::WriteLayer(const model::Qwen3Model& model, int64_t i,
                                        const std::map<std::string, QuantizedWeight>& weights) {
  if (finished_) return absl::FailedPreconditionError("WriteLayer after Finish");
  if (i < 0 || i >= static_cast<int64_t>(written_.size()) || written_[i]) {
    return absl::InvalidArgumentError(absl::StrCat("layer ", i, " is out of range or written"));
  }
  try {
    // The layer's tensors are made one at a time as they are written: a 30B-A3B layer's 384
    // experts in bf16 alone are 1.2 GB beside the fp32 layer.
    std::vector<LazyTensor> plain, packed;
    auto stored = [this](const at::Tensor& t) {
      return LazyTensor{"", t.is_floating_point() ? stored_ : t.scalar_type(), t.sizes().vec(),
                        [t, st = stored_]() -> StatusOr<at::Tensor> { return Stored(t, st); }};
    };
    for (const auto& [name, t] : model.FullLayerTensors(i)) {
      LazyTensor plain_tensor = stored(t);
      plain_tensor.name = name;
      plain.push_back(plain_tensor);
      if (!packed_) continue;
      const std::string module = name.substr(0, name.size() - std::string(".weight").size());
      auto it = weights.find(module);
      std::string why = "not quantized";
      if (it != weights.end() && CanPack(it->second, &why)) {
        // qweight packs the module; its other three tensors follow it and take their share.
        auto cache = std::make_shared<std::optional<PackedWeight>>();
        const QuantizedWeight* q = &it->second;
        auto part = [cache, q](at::Tensor PackedWeight::*member, bool first,
                               bool last) -> StatusOr<at::Tensor> {
          if (first || !cache->has_value()) {
            ASSIGN_OR_RETURN(PackedWeight p, PackGptq(*q));
            *cache = std::move(p);
          }
          at::Tensor out = (**cache).*member;
          if (last) cache->reset();
          return out;
        };
        const PackedShapes shapes = PackedShapesOf(*q);
        packed.push_back({module + ".qweight", at::kInt, shapes.qweight,
                          [part] { return part(&PackedWeight::qweight, true, false); }});
        packed.push_back({module + ".qzeros", at::kInt, shapes.qzeros,
                          [part] { return part(&PackedWeight::qzeros, false, false); }});
        packed.push_back({module + ".scales", at::kHalf, shapes.scales,
                          [part] { return part(&PackedWeight::scales, false, false); }});
        packed.push_back({module + ".g_idx", at::kInt, shapes.g_idx,
                          [part] { return part(&PackedWeight::g_idx, false, true); }});
        packed_grids_[module] = {q->grid.bits, q->grid.group_size};
        ++packed_counts_["packed"];
      } else {
        packed.push_back(plain_tensor);
        if (it != weights.end() || name.find("_proj.weight") != std::string::npos) {
          packed_info_[module] = why;
          unpacked_modules_.push_back(module);
          ++packed_counts_["unpacked"];
        }
      }
    }
    RETURN_IF_ERROR(WriteShard(tmp_dir_, i + 2, plain, &shards_));
    if (packed_) {
      RETURN_IF_ERROR(
          WriteShard((fs::path(tmp_dir_) / kPackedDir).string(), i + 2, packed, &packed_shards_));
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("writing layer ", i, ": ", e.what_without_backtrace()));
  }
  written_[i] = true;
  return absl::OkStatus();
}

Status QuantizedModelWriter::Finish(const model::Qwen3Model& model, const QuantizeResult& result,
                                    const nlohmann::json& recipe) {
  for (size_t i = 0; i < written_.size(); ++i) {
    if (!written_[i])
      return absl::FailedPreconditionError(absl::StrCat("layer ", i, " not written"));
  }
  std::vector<LazyTensor> global;
  for (auto& [name, t] : ExportGlobals(model, source_dir_, stored_)) {
    global.push_back({name, t.scalar_type(), t.sizes().vec(),
                      [t = t]() -> StatusOr<at::Tensor> { return t; }});
  }
  const fs::path tmp(tmp_dir_);
  const fs::path src(source_dir_);
  RETURN_IF_ERROR(WriteShard(tmp_dir_, 1, global, &shards_));
  RETURN_IF_ERROR(WriteIndex(tmp_dir_, shards_));

  // config.json: the source's own file when it has one (keeps keys this code does not model).
  nlohmann::json config;
  if (fs::exists(src / "config.json")) {
    std::ifstream f(src / "config.json");
    config = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  }
  if (!config.is_object()) config = nlohmann::json::parse(model.config().ToJson());
  RETURN_IF_ERROR(WriteText(tmp / "config.json", config.dump(2) + "\n"));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                        "special_tokens_map.json", "vocab.json", "merges.txt"}) {
    RETURN_IF_ERROR(CopyIfPresent(src / f, tmp / f));
  }

  nlohmann::json q = recipe;
  q["seconds"] = result.seconds;
  q["summary"] = result.summary;
  nlohmann::json linears = nlohmann::json::array();
  for (const auto& l : result.linears) {
    nlohmann::json e = {{"name", l.name}, {"loss", l.loss}, {"calib_tokens", l.calib_tokens}};
    if (!l.note.empty()) e["note"] = l.note;
    if (!l.stats.empty()) e["stats"] = l.stats;
    linears.push_back(e);
  }
  q["linears"] = linears;
  if (packed_) {
    q["packed"] = {{"folder", kPackedDir},
                   {"format", "gptq (v1: zero - 1, taken modulo 2^bits)"},
                   {"packed_linears", packed_counts_["packed"]},
                   {"unpacked_linears", packed_info_}};
    const fs::path pk = tmp / kPackedDir;
    RETURN_IF_ERROR(WriteShard(pk.string(), 1, global, &packed_shards_));
    RETURN_IF_ERROR(WriteIndex(pk.string(), packed_shards_));
    nlohmann::json pconfig = config;
    pconfig["quantization_config"] = {
        {"quant_method", "gptq"},
        {"bits", recipe.value("wbits", 4)},
        {"group_size", recipe.value("group_size", int64_t{-1})},
        {"desc_act", recipe.contains("gptq") ? recipe["gptq"].value("act_order", false) : false},
        {"sym", false},
        {"checkpoint_format", "gptq"},
        {"bitsweep_method", recipe.value("method", std::string("?"))}};
    if (recipe.contains("overrides")) {
      // Mixed precision, as GPTQModel's per-module "dynamic" overrides (anchored regexes).
      nlohmann::json& qc = pconfig["quantization_config"];
      int bits = qc["bits"].get<int>();
      if (!PackableBits(bits) && !packed_grids_.empty()) {
        bits = packed_grids_.begin()->second.first;
        qc["bits"] = bits;
      }
      const int64_t group = qc["group_size"].get<int64_t>();
      auto pattern = [](const std::string& module) {
        std::string p = "^";
        for (char c : module) {
          if (c == '.') p += '\\';
          p += c;
        }
        return p + "$";
      };
      nlohmann::json dynamic = nlohmann::json::object();
      for (const auto& [module, grid] : packed_grids_) {
        if (grid.first != bits || grid.second != group) {
          dynamic["+:" + pattern(module)] = {{"bits", grid.first}, {"group_size", grid.second}};
        }
      }
      for (const std::string& module : unpacked_modules_) {
        dynamic["-:" + pattern(module)] = nlohmann::json::object();
      }
      qc["dynamic"] = dynamic;
    }
    RETURN_IF_ERROR(WriteText(pk / "config.json", pconfig.dump(2) + "\n"));
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
      RETURN_IF_ERROR(CopyIfPresent(src / f, pk / f));
    }
    RETURN_IF_ERROR(WriteText(pk / "quantization_config.json", q.dump(2) + "\n"));
  } else {
    q["packed"] = nullptr;
  }
  RETURN_IF_ERROR(WriteText(tmp / "quantization_config.json", q.dump(2) + "\n"));

  // Move into place: the old folder (if any) is replaced only now.
  std::error_code ec;
  const std::string old = absl::StrCat(out_dir_, ".old-", getpid());
  if (fs::exists(out_dir_)) {
    fs::rename(out_dir_, old, ec);
    if (ec) return absl::InternalError(absl::StrCat(out_dir_, ": cannot replace: ", ec.message()));
  }
  fs::rename(tmp_dir_, out_dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat(out_dir_, ": cannot create: ", ec.message()));
  fs::remove_all(old, ec);
  finished_ = true;
  return absl::OkStatus();
}

nlohmann::json LayerLosses(const nlohmann::json& quantization_config) {
  struct Layer {
    double loss = 0;
    int64_t linears = 0, notes = 0, min_tokens = -1;
  };
  std::map<int64_t, Layer> layers;
  const auto linears = quantization_config.find("linears");
  if (linears != quantization_config.end() && linears->is_array()) {
    for (const nlohmann::json& l : *linears) {
      if (!l.is_object() || !l.value("name", nlohmann::json()).is_string()) continue;
      const std::string name = l["name"];
      const std::string prefix = "model.layers.";
      if (name.rfind(prefix, 0) != 0) continue;
      int64_t index = 0;
      if (!absl::SimpleAtoi(name.substr(prefix.size(), name.find('.', prefix.size()) -
                                                           prefix.size()),
                            &index)) {
        continue;
      }
      Layer& layer = layers[index];
      const nlohmann::json loss = l.value("loss", nlohmann::json());
      if (loss.is_number()) layer.loss += loss.get<double>();
      ++layer.linears;
      if (l.contains("note")) ++layer.notes;
      const nlohmann::json tokens = l.value("calib_tokens", nlohmann::json());
      if (tokens.is_number_integer() &&
          (layer.min_tokens < 0 || tokens.get<int64_t>() < layer.min_tokens)) {
        layer.min_tokens = tokens.get<int64_t>();
      }
    }
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [index, layer] : layers) {
    out.push_back({{"layer", index},
                   {"loss", layer.loss},
                   {"linears", layer.linears},
                   {"notes", layer.notes},
                   {"min_calib_tokens", layer.min_tokens}});
  }
  return out;
}

Status WriteQuantizedModel(const std::string& out_dir, const std::string& source_dir,
                           const model::Qwen3Model& model, const QuantizeResult& result,
                           const nlohmann::json& recipe, bool packed) {
  ASSIGN_OR_RETURN(auto writer, QuantizedModelWriter::Create(out_dir, source_dir, model, packed));
  for (int64_t i = 0; i < model.num_layers(); ++i) {
    RETURN_IF_ERROR(writer->WriteLayer(model, i, result.weights));
  }
  return writer->Finish(model, result, recipe);
}

void QuantizedModelWriter::FollowLayer(const model::Qwen3Model& model, int64_t i) {
  (void)model.FullLayerTensors(i);
}

void QuantizedModelWriter::FollowFinish(const model::Qwen3Model& model) {
  (void)model.FullGlobalTensors();
}

}  // namespace bitsweep::quant
