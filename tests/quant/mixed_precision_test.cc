// Mixed precision through the quantizers and the export (common/mixed_precision.h): each
// method puts each linear on its own grid and leaves keep-FP linears untouched; on the demo
// model a layer-0-only recipe changes only layer 0, and a mixed recipe's packed export (per-linear
// bits) evaluates like its dequantized form.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/job_spec.h"
#include "common/mixed_precision.h"
#include "eval/perplexity.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/safetensors.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "quant/calibration_data.h"
#include "quant/load.h"
#include "quant/method.h"
#include "quant/pipeline.h"
#include "quant/quantize_model.h"
#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::QuantOverride;

QuantOverride Override(const std::string& layers, const std::string& linear, int wbits) {
  QuantOverride o;
  o.layers = layers;
  o.linear = linear;
  o.wbits = wbits;
  return o;
}

bitsweep::quant::CalibrationSet Calib(int64_t n, int64_t len, int64_t vocab) {
  bitsweep::quant::CalibrationSet c;
  at::manual_seed(3);
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor t = at::randint(0, vocab, {len}, at::kInt);
    c.samples.emplace_back(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + len);
  }
  return c;
}

// Whether `after` is `before` with each row, or each column, scaled by one factor.
bool ScaledCopy(const at::Tensor& before, const at::Tensor& after) {
  const at::Tensor r = after.to(at::kDouble) / before.to(at::kDouble);
  auto flat = [](const at::Tensor& d) { return d.abs().max().item<double>() < 1e-3; };
  return flat(r / r.narrow(1, 0, 1) - 1) || flat(r / r.narrow(0, 0, 1) - 1);
}

const std::string kDemo = bitsweep::testing::SourceDir() + "/models/demo";

}  // namespace

TEST_CASE("Every method puts each linear on its own bits and leaves keep-FP linears untouched",
          "[quant][mixed]") {
  const std::string method = GENERATE("rtn", "gptq", "awq", "smoothquant", "billm");
  INFO(method);
  const std::string dir = bitsweep::testing::ScratchDir("mixed_tiny_" + method);
  bitsweep::model::TinyModelOptions to;
  to.num_layers = 3;
  to.hidden_size = 64;
  to.intermediate_size = 128;
  REQUIRE(bitsweep::model::WriteTinyModel(dir, to).ok());

  bitsweep::QuantConfig qc;
  qc.method = method;
  const bool sq = method == "smoothquant", billm = method == "billm";
  qc.wbits = billm ? 1 : sq ? 8 : 3;
  qc.group_size = sq || billm ? -1 : 32;
  // SmoothQuant keeps no linear in FP (its activations are quantized): layer 1 at w4 instead.
  qc.overrides = {Override("1", "", sq ? 4 : 16)};
  if (!billm) qc.overrides.push_back(Override("", "down_proj", sq ? 6 : 4));
  // One FP linear inside a group that shares its input (GPTQ's Hessian, AWQ's scale search).
  if (!billm && !sq) qc.overrides.push_back(Override("2", "k_proj", 16));
  auto quantizer = bitsweep::quant::MakeQuantizer(qc);
  INFO(quantizer.status().ToString());
  REQUIRE(quantizer.ok());
  bitsweep::quant::QuantizeOptions o;
  o.method = *quantizer;

  auto original = bitsweep::model::Qwen3Model::Load(dir);
  auto m = bitsweep::model::Qwen3Model::Load(dir);
  REQUIRE(original.ok());
  REQUIRE(m.ok());
  const auto calib = Calib(4, 32, 200);
  auto r = bitsweep::quant::QuantizeModel(**m, (*quantizer)->calibrated() ? &calib : nullptr, o);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  const bitsweep::QuantConfig& normal = (*quantizer)->config();
  for (int64_t i = 0; i < 3; ++i) {
    for (const char* name :
         {"self_attn.q_proj", "self_attn.k_proj", "self_attn.o_proj", "mlp.up_proj",
          "mlp.down_proj"}) {
      const std::string full = "model.layers." + std::to_string(i) + "." + std::string(name);
      INFO(full);
      const bitsweep::LinearPrecision p = bitsweep::ResolveLinearPrecision(normal, i, name);
      const at::Tensor before = (*original)->FindLinear(full)->weight();
      const at::Tensor after = (*m)->FindLinear(full)->weight();
      if (p.keep_fp()) {
        // AWQ still applies its scales around an FP linear (an input or output scaling that
        // leaves the layer's function unchanged); the other methods leave it as it was.
        if (method == "awq") {
          CHECK(ScaledCopy(before, after));
        } else {
          CHECK(at::equal(before, after));
        }
        CHECK(r->weights.count(full) == 0);
        continue;
      }
      CHECK_FALSE(at::equal(before, after));
      if (billm) continue;  // no integer grid
      REQUIRE(r->weights.count(full) == 1);
      CHECK(r->weights.at(full).grid.bits == p.wbits);
    }
  }
  if (!billm) {
    CHECK(r->weights.at("model.layers.0.mlp.down_proj").grid.bits == (sq ? 6 : 4));
    CHECK(r->weights.at("model.layers.0.mlp.up_proj").grid.bits == qc.wbits);
  }
}

TEST_CASE("On the demo model a layer-0-only w2 recipe changes only layer 0's weights",
          "[quant][mixed]") {
  bitsweep::model::ConfigureRuntime();
  bitsweep::quant::QuantizeRequest req;
  req.model = kDemo;
  req.out = bitsweep::testing::ScratchDir("mixed_layer0") + "/model";
  req.method = "rtn";
  req.wbits = 2;
  req.group = 64;
  req.overrides = {Override("1-3", "", 16)};
  req.device = "cpu";
  req.dtype = "fp32";
  auto report = bitsweep::quant::QuantizeFolder(req, nullptr);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  auto src = bitsweep::model::Checkpoint::Open(kDemo);
  auto out = bitsweep::model::Checkpoint::Open(req.out);
  REQUIRE(src.ok());
  REQUIRE(out.ok());
  int changed = 0;
  for (const std::string& name : (*src)->Names()) {
    INFO(name);
    REQUIRE((*out)->Has(name));
    const bool same = at::equal((*src)->Load(name).value(), (*out)->Load(name).value());
    const bool layer0_linear = name.rfind("model.layers.0.", 0) == 0 &&
                               name.find("_proj.weight") != std::string::npos;
    CHECK(same != layer0_linear);
    changed += same ? 0 : 1;
  }
  CHECK(changed == 7);
  std::ifstream qf(req.out + "/quantization_config.json");
  const nlohmann::json q = nlohmann::json::parse(qf);
  CHECK(q["overrides_text"] == "L1-3:fp");
  // Layer 0's linears at 2 bits, the other three layers' at 16: (2 + 3 x 16) / 4.
  CHECK(q["avg_wbits"].get<double>() == Approx(12.5));
}

TEST_CASE("A mixed recipe's packed export stores each linear's bits and evaluates to the ppl of "
          "its dequantized form",
          "[quant][mixed]") {
  bitsweep::model::ConfigureRuntime();
  bitsweep::quant::QuantizeRequest req;
  req.model = kDemo;
  req.out = bitsweep::testing::ScratchDir("mixed_packed") + "/model";
  req.method = "rtn";
  req.wbits = 3;
  req.group = 64;
  req.overrides = {Override("0", "", 4), Override("", "down_proj", 2),
                   Override("3", "q_proj", 16)};
  req.device = "cpu";
  req.dtype = "fp32";
  auto report = bitsweep::quant::QuantizeFolder(req, nullptr);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  REQUIRE(report->packed);

  std::ifstream cf(req.out + "/packed/config.json");
  const nlohmann::json qc = nlohmann::json::parse(cf)["quantization_config"];
  CHECK(qc["bits"] == 3);
  const nlohmann::json& dyn = qc["dynamic"];
  CHECK(dyn["+:^model\\.layers\\.0\\.self_attn\\.q_proj$"]["bits"] == 4);
  CHECK(dyn["+:^model\\.layers\\.2\\.mlp\\.down_proj$"]["bits"] == 2);
  CHECK(dyn.contains("-:^model\\.layers\\.3\\.self_attn\\.q_proj$"));
  CHECK_FALSE(dyn.contains("+:^model\\.layers\\.2\\.mlp\\.up_proj$"));  // at the default 3

  // qweight [in * bits / 32, out]: each linear packed at its own width.
  auto packed_ck = bitsweep::model::Checkpoint::Open(req.out + "/packed");
  REQUIRE(packed_ck.ok());
  CHECK((*packed_ck)->Load("model.layers.0.mlp.up_proj.qweight").value().size(0) == 256 * 4 / 32);
  CHECK((*packed_ck)->Load("model.layers.1.mlp.up_proj.qweight").value().size(0) == 256 * 3 / 32);
  CHECK((*packed_ck)->Load("model.layers.1.mlp.down_proj.qweight").value().size(0) ==
        512 * 2 / 32);
  CHECK((*packed_ck)->Has("model.layers.3.self_attn.q_proj.weight"));

  auto tok = bitsweep::model::Tokenizer::Load(kDemo);
  REQUIRE(tok.ok());
  auto stream = bitsweep::eval::WikiText2TestStream(**tok, kDemo + "/heldout");
  REQUIRE(stream.ok());
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = 128;
  po.max_windows = 8;
  auto packed = bitsweep::quant::LoadModelForEval(req.out + "/packed");
  auto deq = bitsweep::quant::LoadModelForEval(req.out);
  REQUIRE(packed.ok());
  REQUIRE(deq.ok());
  CHECK_THAT(packed->description, Catch::Contains("per-linear overrides"));
  auto ppl_packed = bitsweep::eval::EvaluatePerplexity(*packed->model, *stream, po);
  auto ppl_deq = bitsweep::eval::EvaluatePerplexity(*deq->model, *stream, po);
  REQUIRE(ppl_packed.ok());
  REQUIRE(ppl_deq.ok());
  INFO("packed " << ppl_packed->ppl << ", dequantized " << ppl_deq->ppl);
  // The same codes; the folders differ only in rounding (fp16 scales vs bf16 weights).
  CHECK(ppl_packed->ppl == Approx(ppl_deq->ppl).epsilon(0.01));
}
