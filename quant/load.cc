#include "quant/load.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/memory.h"
#include "model/cuda_info.h"
#include "model/qwen3_config.h"
#include "model/safetensors.h"
#include "quant/packed.h"
#include "quant/smoothquant.h"

namespace bitsweep::quant {

namespace fs = std::filesystem;

namespace {

StatusOr<nlohmann::json> ReadJson(const fs::path& path) {
  std::ifstream f(path);
  if (!f) return absl::NotFoundError(absl::StrCat(path.string(), ": cannot open"));
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  return j;
}

}  // namespace

std::string MemoryPlanJson(const model::MemoryPlan& plan) {
  return nlohmann::json{{"mode", plan.streamed ? "streamed" : "resident"},
                        {"prefetch", plan.prefetch},
                        {"reason", plan.reason},
                        {"budget_bytes", plan.budget_bytes},
                        {"model_bytes", plan.resident_bytes},
                        {"layer_bytes", plan.layer_bytes}}
      .dump();
}

StatusOr<LoadedModel> LoadModelForEval(const std::string& dir,
                                       const model::LoadOptions& requested,
                                       int64_t max_memory_bytes) {
  LoadedModel out;
  model::LoadOptions options = requested;
  if (max_memory_bytes >= 0) {
    ASSIGN_OR_RETURN(model::Qwen3Config config, model::LoadQwen3Config(dir));
    const int world = options.tp ? options.tp->world_size() : 1;
    const bool given = max_memory_bytes > 0;
    int64_t budget = max_memory_bytes;
    std::string source = "--max-memory";
    if (!given && options.device.is_cuda()) {
      // The GPU's memory free now (its caching allocator's unused blocks counted as free).
      ASSIGN_OR_RETURN(model::CudaDeviceInfo gpu, model::QueryCudaDevice(options.device.index()));
      budget = gpu.free_bytes;
      source = absl::StrCat("free memory of ", options.device.str());
    } else if (!given) {
      budget = AvailableMemoryBytes();
      source = "available memory";
    }
    auto plan = model::PlanModelMemory(config, options.dtype, world, budget, source,
                                       options.device.is_cuda());
    if (!plan.ok()) {
      return absl::Status(plan.status().code(), absl::StrCat(dir, ": ", plan.status().message()));
    }
    options.lazy_layers = options.lazy_globals = plan->streamed;
    options.prefetch_layers = plan->prefetch;
    out.memory = *plan;
  }
  ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(fs::path(dir) / "config.json"));
  const nlohmann::json qc = config.value("quantization_config", nlohmann::json());
  if (qc.is_object()) {
    const std::string method = qc.value("quant_method", std::string());
    if (method != "gptq") {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, "/config.json: quantization_config.quant_method \"", method,
          "\" is not supported (bitsweep reads the packed \"gptq\" layout)"));
    }
    const std::string format = qc.value("checkpoint_format", std::string("gptq"));
    if (format != "gptq") {
      return absl::InvalidArgumentError(absl::StrCat(
          dir, "/config.json: checkpoint_format \"", format, "\" is not supported (only gptq)"));
    }
    if (!qc.contains("bits") || !qc["bits"].is_number_integer() ||
        !PackableBits(qc["bits"].get<int>())) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/config.json: quantization_config.bits must be 2, 3, 4 or 8"));
    }
    const int bits = qc["bits"].get<int>();
    const int64_t group = qc.value("group_size", int64_t{-1});
    // Mixed precision: GPTQModel's "dynamic" per-module overrides ("+:regex" or "regex" ->
    // {bits, group_size}; "-:regex" marks modules stored unpacked, read as plain weights).
    struct Dynamic {
      std::regex pattern;
      int bits;
      int64_t group;
    };
    auto dynamic = std::make_shared<std::vector<Dynamic>>();
    if (const nlohmann::json d = qc.value("dynamic", nlohmann::json()); d.is_object()) {
      for (auto it = d.begin(); it != d.end(); ++it) {
        std::string key = it.key();
        if (key.rfind("-:", 0) == 0) continue;
        if (key.rfind("+:", 0) == 0) key = key.substr(2);
        const nlohmann::json& v = it.value();
        const int b = v.is_object() ? v.value("bits", bits) : bits;
        if (!PackableBits(b)) {
          return absl::InvalidArgumentError(absl::StrCat(
              dir, "/config.json: quantization_config.dynamic \"", it.key(),
              "\": bits must be 2, 3, 4 or 8"));
        }
        try {
          dynamic->push_back({std::regex(key), b, v.is_object() ? v.value("group_size", group)
                                                                 : group});
        } catch (const std::regex_error& e) {
          return absl::InvalidArgumentError(absl::StrCat(
              dir, "/config.json: quantization_config.dynamic \"", it.key(), "\": ", e.what()));
        }
      }
    }
    ASSIGN_OR_RETURN(model::Qwen3Config c, model::LoadQwen3Config(dir));
    ASSIGN_OR_RETURN(std::unique_ptr<model::Checkpoint> opened, model::Checkpoint::Open(dir));
    std::shared_ptr<const model::Checkpoint> ck(std::move(opened));
    const at::ScalarType dtype =
        options.dtype == model::ComputeDType::kBFloat16 ? at::kBFloat16 : at::kFloat;
    auto count = std::make_shared<int64_t>(0);
    auto get = [ck, dtype, bits, group, count,
                dynamic](const std::string& name) -> StatusOr<at::Tensor> {
      if (ck->Has(name)) return ck->LoadAs(name, dtype);
      const std::string suffix = ".weight";
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const std::string module = name.substr(0, name.size() - suffix.size());
        if (ck->Has(module + ".qweight")) {
          PackedWeight p;
          p.bits = bits;
          p.group_size = group;
          for (const Dynamic& d : *dynamic) {
            if (std::regex_search(module, d.pattern)) {
              p.bits = d.bits;
              p.group_size = d.group;
              break;
            }
          }
          ASSIGN_OR_RETURN(p.qweight, ck->Load(module + ".qweight"));
          if (!ck->Has(module + ".qzeros") || !ck->Has(module + ".scales") ||
              !ck->Has(module + ".g_idx")) {
            return absl::InvalidArgumentError(
                absl::StrCat(module, ": packed linear lacks qzeros, scales or g_idx"));
          }
          ASSIGN_OR_RETURN(p.qzeros, ck->Load(module + ".qzeros"));
          ASSIGN_OR_RETURN(p.scales, ck->Load(module + ".scales"));
          ASSIGN_OR_RETURN(p.g_idx, ck->Load(module + ".g_idx"));
          auto w = UnpackGptq(p, p.scales.dim() == 2 ? p.scales.size(1) : 0,
                              p.g_idx.dim() == 1 ? p.g_idx.size(0) : 0);
          if (!w.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(module, ": ", w.status().message()));
          }
          ++*count;
          return w->Dequantize().to(dtype);
        }
      }
      return absl::InvalidArgumentError(absl::StrCat("checkpoint has no tensor \"", name, "\""));
    };
    auto m = model::Qwen3Model::FromSource(c, get, options);
    if (!m.ok()) {
      return absl::Status(m.status().code(), absl::StrCat(dir, ": ", m.status().message()));
    }
    out.model = std::move(m).value();
    out.description = absl::StrCat("packed gptq ", bits, "-bit g", group,
                                   dynamic->empty() ? "" : " with per-linear overrides", " (",
                                   *count, " linears dequantized at load)");
  } else {
    ASSIGN_OR_RETURN(out.model, model::Qwen3Model::Load(dir, options));
  }

  const fs::path qpath = fs::path(dir) / "quantization_config.json";
  if (fs::exists(qpath)) {
    ASSIGN_OR_RETURN(nlohmann::json q, ReadJson(qpath));
    if (q.value("method", std::string()) == "smoothquant") {
      const nlohmann::json sq = q.value("smoothquant", nlohmann::json::object());
      if (!sq.contains("abits") || !sq["abits"].is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(qpath.string(), ": smoothquant.abits is missing or not an integer"));
      }
      const int abits = sq["abits"].get<int>();
      const bool qkv = sq.value("quantize_qkv_output", false);
      Status s = InstallActivationQuantization(*out.model, abits, qkv);
      if (!s.ok()) return absl::Status(s.code(), absl::StrCat(qpath.string(), ": ", s.message()));
      absl::StrAppend(&out.description, out.description.empty() ? "" : "; ",
                      "activation quantization a", abits, " per token",
                      qkv ? " (q/k/v outputs too)" : "");
    }
  }
  return out;
}

}  // namespace bitsweep::quant
