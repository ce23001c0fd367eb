// Streaming quantization and export: a lazy model quantized layer by layer and written as it
// goes equals the in-memory path; the packed folder loads back to the same model.
#include "quant/export.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "common/catalog.h"
#include "model/qwen3.h"
#include "model/safetensors.h"
#include "model/tiny_model.h"
#include "quant/calibration_data.h"
#include "quant/load.h"
#include "quant/method.h"
#include "quant/quantize_model.h"
#include "tests/testing/paths.h"

namespace {

namespace fs = std::filesystem;

// The catalog's method `name` at `bits` in groups of `group` (QuantizeModel's options).
bitsweep::quant::QuantizeOptions Options(const std::string& name, int bits, int64_t group,
                                         std::map<std::string, std::string> options = {}) {
  bitsweep::QuantConfig qc;
  qc.method = name;
  qc.wbits = bits;
  qc.group_size = static_cast<int>(group);
  qc.options = std::move(options);
  bitsweep::quant::QuantizeOptions o;
  o.method = bitsweep::quant::MakeQuantizer(qc).value();
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

std::string TinyModel(const std::string& name, bool moe = false) {
  const std::string dir = bitsweep::testing::ScratchDir(name);
  bitsweep::model::TinyModelOptions o;
  o.num_layers = 3;
  o.moe = moe;
  o.hidden_size = 64;
  o.intermediate_size = 128;
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  return dir;
}

at::Tensor Logits(const bitsweep::model::Qwen3Model& m) {
  c10::InferenceMode guard;
  at::Tensor ids = at::arange(40, at::kLong).remainder(200).view({2, 20});
  return m.Forward(ids);
}

}  // namespace

TEST_CASE("A lazy model materializes layers on demand and refuses to run a released one",
          "[quant][export]") {
  const std::string dir = TinyModel("lazy_model");
  auto eager = bitsweep::model::Qwen3Model::Load(dir);
  bitsweep::model::LoadOptions lo;
  lo.lazy_layers = true;
  auto lazy = bitsweep::model::Qwen3Model::Load(dir, lo);
  REQUIRE(eager.ok());
  REQUIRE(lazy.ok());
  CHECK_FALSE((*lazy)->layer_loaded(0));
  CHECK_THROWS((*lazy)->Forward(at::zeros({1, 4}, at::kLong)));
  for (int64_t i = 0; i < (*lazy)->num_layers(); ++i) REQUIRE((*lazy)->MaterializeLayer(i).ok());
  CHECK(at::equal(Logits(**eager), Logits(**lazy)));
  (*lazy)->ReleaseLayer(1);
  CHECK_FALSE((*lazy)->layer_loaded(1));
  CHECK_THROWS(Logits(**lazy));
  REQUIRE((*lazy)->MaterializeLayer(1).ok());
  CHECK(at::equal(Logits(**eager), Logits(**lazy)));
}

TEST_CASE("Streaming GPTQ of a lazy model, with or without prefetching the next layer, writes "
          "the same weights as the in-memory path",
          "[quant][export]") {
  const bool prefetch = GENERATE(false, true);
  INFO("prefetch " << prefetch);
  const std::string dir = TinyModel(prefetch ? "stream_src_prefetch" : "stream_src");
  const auto calib = Calib(4, 32, 200);
  bitsweep::quant::QuantizeOptions o = Options("gptq", 4, 32, {{"act_order", "true"}});

  auto eager = bitsweep::model::Qwen3Model::Load(dir);
  REQUIRE(eager.ok());
  auto r1 = bitsweep::quant::QuantizeModel(**eager, &calib, o);
  REQUIRE(r1.ok());
  const std::string out1 =
      bitsweep::testing::ScratchDir(prefetch ? "stream_out_eager_p" : "stream_out_eager");
  REQUIRE(bitsweep::quant::WriteQuantizedModel(out1, dir, **eager, *r1, {{"method", "gptq"}},
                                               /*packed=*/true)
              .ok());

  bitsweep::model::LoadOptions lo;
  lo.lazy_layers = true;
  lo.prefetch_layers = prefetch;
  auto lazy = bitsweep::model::Qwen3Model::Load(dir, lo);
  REQUIRE(lazy.ok());
  const std::string out2 =
      bitsweep::testing::ScratchDir(prefetch ? "stream_out_prefetch" : "stream_out_lazy") +
      "/model";
  auto writer = bitsweep::quant::QuantizedModelWriter::Create(out2, dir, **lazy, true);
  REQUIRE(writer.ok());
  int64_t sunk = 0;
  o.layer_sink = [&](int64_t i, std::map<std::string, bitsweep::quant::QuantizedWeight>& w) {
    CHECK(w.size() == 7);  // q, k, v, o, gate, up, down of layer i
    ++sunk;
    return (*writer)->WriteLayer(**lazy, i, w);
  };
  auto r2 = bitsweep::quant::QuantizeModel(**lazy, &calib, o);
  REQUIRE(r2.ok());
  CHECK(sunk == 3);
  CHECK(r2->weights.empty());  // handed to the sink layer by layer
  for (int64_t i = 0; i < 3; ++i) CHECK_FALSE((*lazy)->layer_loaded(i));
  REQUIRE((*writer)->Finish(**lazy, *r2, {{"method", "gptq"}, {"wbits", 4}}).ok());
  CHECK_FALSE(fs::exists(out2 + ".partial-" + std::to_string(getpid())));

  auto a = bitsweep::model::Checkpoint::Open(out1);
  auto b = bitsweep::model::Checkpoint::Open(out2);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE((*a)->Names() == (*b)->Names());
  for (const auto& n : (*a)->Names()) {
    INFO(n);
    CHECK(at::equal((*a)->Load(n).value(), (*b)->Load(n).value()));
  }
  CHECK(fs::exists(out2 + "/model.safetensors.index.json"));
  CHECK(fs::exists(out2 + "/tokenizer.json"));
  std::ifstream qf(out2 + "/quantization_config.json");
  const nlohmann::json q = nlohmann::json::parse(qf);
  CHECK(q["linears"].size() == 21);
  CHECK(q["packed"]["packed_linears"] == 21);

  // The packed folder loads (dequantizing at load) to the dequantized model up to the fp16
  // rounding of the scales: rebuild the expected weights with fp16-rounded scales.
  auto packed = bitsweep::quant::LoadModelForEval(out2 + "/packed");
  REQUIRE(packed.ok());
  CHECK_THAT(packed->description, Catch::Contains("packed gptq 4-bit"));
  auto deq = bitsweep::model::Qwen3Model::Load(out2);
  REQUIRE(deq.ok());
  for (auto& [name, w] : r1->weights) {
    bitsweep::quant::QuantizedWeight h = w;
    h.scales = h.scales.to(at::kHalf).to(at::kFloat);
    INFO(name);
    CHECK(at::equal(packed->model->FindLinear(name)->weight(), h.Dequantize()));
  }
  const at::Tensor lp = Logits(*packed->model), ld = Logits(**deq);
  CHECK(((lp - ld).abs().max().item<double>()) < 1e-2 * ld.abs().max().item<double>());
}

TEST_CASE("Quantize rejects bad options before any work, naming the parameter",
          "[quant][export]") {
  const std::string dir = TinyModel("bad_options");
  auto m = bitsweep::model::Qwen3Model::Load(dir);
  REQUIRE(m.ok());
  // Catalog checks (bits, abits) fail when the method is built, model checks (the group size
  // against in_features, calibration) when it runs.
  auto run = [&](const std::string& method, int bits, int group, int abits) -> bitsweep::Status {
    bitsweep::QuantConfig qc;
    qc.method = method;
    qc.wbits = bits;
    qc.group_size = group;
    qc.abits = abits;
    auto q = bitsweep::quant::MakeQuantizer(qc);
    if (!q.ok()) return q.status();
    bitsweep::quant::QuantizeOptions o;
    o.method = *q;
    return bitsweep::quant::QuantizeModel(**m, nullptr, o).status();
  };
  auto r = run("rtn", 4, 48, 0);  // 48 does not divide 64
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.message()), Catch::Contains("group"));
  r = run("rtn", 9, 32, 0);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.message()), Catch::Contains("bits"));
  r = run("smoothquant", 4, -1, 1);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.message()), Catch::Contains("abits"));
  r = run("gptq", 4, 32, 0);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(std::string(r.message()), Catch::Contains("calibration"));
}
