#include "quant/export.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "model/qwen3.h"
#include "model/tiny_model.h"

namespace bitsweep::quant {

namespace fs = std::filesystem;

Status WriteQuantizedModel(const std::string& out_dir, const std::string& source_dir,
                           const model::Qwen3Model& model, const QuantizeResult& result,
                           const nlohmann::json& recipe) {
  const std::string& td = model.config().torch_dtype;
  const std::string stored = td == "bfloat16" ? "bf16" : td == "float16" ? "f16" : "f32";
  RETURN_IF_ERROR(model::WriteModelFolder(out_dir, model.config(), model.NamedTensors(), stored, 0));
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path src = fs::path(source_dir) / f;
    if (!fs::exists(src)) continue;
    std::error_code ec;
    fs::copy_file(src, fs::path(out_dir) / f, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat(src.string(), ": copy failed: ", ec.message()));
  }
  nlohmann::json q = recipe;
  q["seconds"] = result.seconds;
  nlohmann::json linears = nlohmann::json::array();
  for (const auto& l : result.linears) {
    nlohmann::json e = {{"name", l.name}, {"loss", l.loss}, {"calib_tokens", l.calib_tokens}};
    if (!l.note.empty()) e["note"] = l.note;
    linears.push_back(e);
  }
  q["linears"] = linears;
  std::ofstream f(fs::path(out_dir) / "quantization_config.json");
  f << q.dump(2) << "\n";
  if (!f) return absl::InternalError(absl::StrCat(out_dir, ": cannot write quantization_config.json"));
  return absl::OkStatus();
}

}  // namespace bitsweep::quant
