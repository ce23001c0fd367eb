#include "model/qwen3.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/tiny_model.h"
#include "tests/testing/paths.h"
#include "tests/testing/python.h"

namespace {

using bitsweep::model::ComputeDType;
using bitsweep::model::LoadOptions;
using bitsweep::model::Qwen3Model;
using bitsweep::model::TinyModelOptions;

// Forward agreement with the float64 reference, relative to the largest reference logit.
constexpr double kFp32RelTol = 1e-4;
// bf16 compute rounds every activation to 8 mantissa bits over a few layers.
constexpr double kBf16RelTol = 5e-2;

std::vector<std::vector<int64_t>> RandomIds(int rows, int len, int64_t vocab, uint64_t seed) {
  std::vector<std::vector<int64_t>> ids(rows, std::vector<int64_t>(len));
  uint64_t x = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& r : ids) {
    for (auto& v : r) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      v = static_cast<int64_t>((x >> 33) % static_cast<uint64_t>(vocab));
    }
  }
  return ids;
}

at::Tensor ToTensor(const std::vector<std::vector<int64_t>>& ids) {
  at::Tensor t = at::empty({static_cast<int64_t>(ids.size()), static_cast<int64_t>(ids[0].size())},
                           at::kLong);
  for (size_t i = 0; i < ids.size(); ++i) {
    for (size_t j = 0; j < ids[i].size(); ++j) t[i][j] = ids[i][j];
  }
  return t;
}

// Logits [rows, T, vocab] from tests/reference/qwen3_reference.py (float64).
at::Tensor ReferenceLogits(const std::string& model_dir,
                           const std::vector<std::vector<int64_t>>& ids, int64_t vocab,
                           const std::string& scratch) {
  const std::string ids_path = scratch + "/ids.json";
  const std::string out_path = scratch + "/ref.bin";
  std::ofstream(ids_path) << nlohmann::json(ids).dump();
  bitsweep::testing::RunPython(bitsweep::testing::SourceDir() +
                                   "/tests/reference/qwen3_reference.py " + model_dir + " " +
                                   ids_path + " " + out_path,
                               scratch + "/python.log");
  const int64_t n = static_cast<int64_t>(ids.size() * ids[0].size()) * vocab;
  std::vector<double> buf(n);
  std::ifstream in(out_path, std::ios::binary);
  in.read(reinterpret_cast<char*>(buf.data()), n * sizeof(double));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(n * sizeof(double)));
  return at::from_blob(buf.data(), {static_cast<int64_t>(ids.size()),
                                    static_cast<int64_t>(ids[0].size()), vocab},
                       at::kDouble)
      .clone();
}

double RelError(const at::Tensor& got, const at::Tensor& ref) {
  return (got.to(at::kDouble) - ref).abs().max().item<double>() / ref.abs().max().item<double>();
}

std::unique_ptr<Qwen3Model> LoadOrDie(const std::string& dir, ComputeDType dtype) {
  LoadOptions o;
  o.dtype = dtype;
  auto m = Qwen3Model::Load(dir, o);
  INFO(m.status().ToString());
  REQUIRE(m.ok());
  return std::move(m).value();
}

void CheckAgainstReference(const TinyModelOptions& opts, const std::string& name, int rows,
                           int len, ComputeDType dtype, double tol) {
  bitsweep::testing::RequirePythonTorch();
  const std::string dir = bitsweep::testing::ScratchDir(name);
  REQUIRE(bitsweep::model::WriteTinyModel(dir + "/model", opts).ok());
  auto model = LoadOrDie(dir + "/model", dtype);
  const int64_t vocab = model->config().vocab_size;
  auto ids = RandomIds(rows, len, vocab, opts.seed + 7);
  at::Tensor ref = ReferenceLogits(dir + "/model", ids, vocab, dir);
  c10::InferenceMode guard;
  at::Tensor got = model->Forward(ToTensor(ids));
  const double err = RelError(got, ref);
  INFO("max |logit - reference| / max |reference| = " << err);
  CHECK(err < tol);
}

}  // namespace

TEST_CASE("Dense Qwen3 fp32 logits match the float64 HF-semantics reference", "[qwen3][python]") {
  TinyModelOptions o;
  o.seed = 1;
  // 300 tokens span two attention chunks, so the chunked causal mask is exercised.
  CheckAgainstReference(o, "qwen3_dense_ref", 2, 300, ComputeDType::kFloat32, kFp32RelTol);
}

TEST_CASE("MoE Qwen3 fp32 logits match the float64 HF-semantics reference", "[qwen3][python]") {
  TinyModelOptions o;
  o.moe = true;
  o.seed = 2;
  o.tie_word_embeddings = false;
  CheckAgainstReference(o, "qwen3_moe_ref", 2, 24, ComputeDType::kFloat32, kFp32RelTol);
}

TEST_CASE("A sharded bf16 checkpoint evaluated in fp32 matches the reference", "[qwen3][python]") {
  TinyModelOptions o;
  o.seed = 3;
  o.dtype = "bf16";
  o.max_shard_bytes = 20000;
  o.tie_word_embeddings = false;
  CheckAgainstReference(o, "qwen3_bf16_sharded_ref", 1, 40, ComputeDType::kFloat32, kFp32RelTol);
}

TEST_CASE("A sharded bf16 MoE checkpoint evaluated in fp32 matches the reference",
          "[qwen3][python]") {
  TinyModelOptions o;
  o.moe = true;
  o.seed = 4;
  o.dtype = "bf16";
  o.max_shard_bytes = 20000;
  CheckAgainstReference(o, "qwen3_moe_bf16_ref", 1, 16, ComputeDType::kFloat32, kFp32RelTol);
}

TEST_CASE("bf16 compute stays within bf16 rounding of the reference", "[qwen3][python]") {
  TinyModelOptions o;
  o.seed = 5;
  o.dtype = "bf16";
  CheckAgainstReference(o, "qwen3_bf16_compute_ref", 1, 64, ComputeDType::kBFloat16, kBf16RelTol);
}

TEST_CASE("Right padding does not change the logits of real tokens", "[qwen3]") {
  for (bool moe : {false, true}) {
    TinyModelOptions o;
    o.moe = moe;
    o.seed = 11;
    const std::string dir = bitsweep::testing::ScratchDir(moe ? "qwen3_pad_moe" : "qwen3_pad");
    REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
    auto model = LoadOrDie(dir, ComputeDType::kFloat32);
    c10::InferenceMode guard;
    auto ids = RandomIds(3, 37, model->config().vocab_size, 3);
    const int lengths[] = {37, 20, 5};
    at::Tensor batch = ToTensor(ids);
    for (int r = 0; r < 3; ++r) batch[r].narrow(0, lengths[r], 37 - lengths[r]).fill_(0);
    at::Tensor batched = model->Forward(batch);
    for (int r = 0; r < 3; ++r) {
      at::Tensor alone = model->Forward(batch[r].narrow(0, 0, lengths[r]).unsqueeze(0));
      at::Tensor part = batched[r].narrow(0, 0, lengths[r]).unsqueeze(0);
      CHECK(at::allclose(part, alone, 1e-5, 1e-5));
    }
  }
}

TEST_CASE("Running the layers one by one equals the full forward", "[qwen3]") {
  TinyModelOptions o;
  o.seed = 12;
  o.num_layers = 3;
  const std::string dir = bitsweep::testing::ScratchDir("qwen3_layerwise");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  auto model = LoadOrDie(dir, ComputeDType::kFloat32);
  c10::InferenceMode guard;
  at::Tensor ids = ToTensor(RandomIds(2, 19, model->config().vocab_size, 5));
  at::Tensor h = model->Embed(ids);
  auto rope = model->MakeRope(19);
  for (int64_t i = 0; i < model->num_layers(); ++i) h = model->RunLayer(i, h, rope);
  at::Tensor logits = model->LmHead(model->FinalNorm(h));
  CHECK(at::equal(logits, model->Forward(ids)));
}

TEST_CASE("Replacing a linear's weight changes the forward, and names resolve", "[qwen3]") {
  TinyModelOptions o;
  o.seed = 13;
  o.moe = true;
  const std::string dir = bitsweep::testing::ScratchDir("qwen3_setweight");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  auto model = LoadOrDie(dir, ComputeDType::kFloat32);
  c10::InferenceMode guard;
  at::Tensor ids = ToTensor(RandomIds(1, 9, model->config().vocab_size, 6));
  at::Tensor before = model->Forward(ids);
  auto* down = model->FindLinear("model.layers.1.mlp.experts.3.down_proj");
  REQUIRE(down != nullptr);
  CHECK(model->FindLinear("model.layers.0.self_attn.q_proj.weight") != nullptr);
  CHECK(model->FindLinear("model.layers.9.self_attn.q_proj") == nullptr);
  CHECK(model->FindLinear("model.layers.0.mlp.gate_proj") == nullptr);  // MoE layer
  CHECK(model->layer(0).Linears().size() == 4 + 1 + 3 * 8);
  auto* q = model->FindLinear("model.layers.0.self_attn.q_proj");
  q->SetWeight(at::zeros_like(q->weight()));
  CHECK_FALSE(at::allclose(before, model->Forward(ids)));
  CHECK_THROWS(q->SetWeight(at::zeros({3, 3})));
}

TEST_CASE("An input hook on a linear sees its input and can replace it", "[qwen3]") {
  TinyModelOptions o;
  o.seed = 14;
  const std::string dir = bitsweep::testing::ScratchDir("qwen3_hook");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  auto model = LoadOrDie(dir, ComputeDType::kFloat32);
  c10::InferenceMode guard;
  at::Tensor ids = ToTensor(RandomIds(2, 7, model->config().vocab_size, 8));
  at::Tensor before = model->Forward(ids);
  auto* up = model->FindLinear("model.layers.1.mlp.up_proj");
  int64_t seen_rows = 0;
  up->SetInputHook([&](const at::Tensor& x) {
    seen_rows += x.numel() / x.size(-1);
    return x;
  });
  CHECK(at::equal(before, model->Forward(ids)));
  CHECK(seen_rows == 14);
  up->SetInputHook([](const at::Tensor& x) { return x * 0; });
  CHECK_FALSE(at::allclose(before, model->Forward(ids)));
}

TEST_CASE("Loading rejects a checkpoint missing a tensor, naming it", "[qwen3]") {
  TinyModelOptions o;
  const std::string dir = bitsweep::testing::ScratchDir("qwen3_missing");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  // Rewrite the weights without one tensor.
  auto full = Qwen3Model::Load(dir);
  REQUIRE(full.ok());
  auto named = (*full)->NamedTensors();
  std::vector<std::pair<std::string, at::Tensor>> kept;
  for (auto& [n, t] : named) {
    if (n != "model.layers.1.self_attn.k_norm.weight") kept.push_back({n, t.clone()});
  }
  full->reset();
  REQUIRE(bitsweep::model::WriteModelFolder(dir, (*Qwen3Model::Load(dir))->config(), kept, "f32", 0)
              .ok());
  auto m = Qwen3Model::Load(dir);
  REQUIRE_FALSE(m.ok());
  CHECK_THAT(std::string(m.status().message()),
             Catch::Matchers::Contains("model.layers.1.self_attn.k_norm.weight"));
}

TEST_CASE("Loading rejects a tensor whose shape disagrees with config.json", "[qwen3]") {
  TinyModelOptions o;
  const std::string dir = bitsweep::testing::ScratchDir("qwen3_badshape");
  REQUIRE(bitsweep::model::WriteTinyModel(dir, o).ok());
  auto cfg = bitsweep::model::LoadQwen3Config(dir);
  REQUIRE(cfg.ok());
  auto weights = bitsweep::model::RandomQwen3Weights(*cfg, 0);
  weights["model.layers.0.mlp.up_proj.weight"] = at::zeros({5, cfg->hidden_size});
  std::vector<std::pair<std::string, at::Tensor>> ordered(weights.begin(), weights.end());
  REQUIRE(bitsweep::model::WriteModelFolder(dir, *cfg, ordered, "f32", 0).ok());
  auto m = Qwen3Model::Load(dir);
  REQUIRE_FALSE(m.ok());
  CHECK_THAT(std::string(m.status().message()),
             Catch::Matchers::Contains("model.layers.0.mlp.up_proj.weight") &&
                 Catch::Matchers::Contains("shape"));
}

TEST_CASE("make-tiny-model's one-tensor-at-a-time writer gives the bytes of the in-memory one",
          "[qwen3]") {
  const std::string root = bitsweep::testing::ScratchDir("tiny-streamed");
  for (const bool moe : {false, true}) {
    for (const char* dtype : {"f32", "bf16"}) {
      INFO("moe " << moe << ", " << dtype);
      bitsweep::model::TinyModelOptions o;
      o.moe = moe;
      o.seed = 11;
      o.dtype = dtype;
      o.tie_word_embeddings = !moe;
      o.max_shard_bytes = 20000;  // several shards and the index
      const std::string streamed = root + "/streamed-" + dtype + (moe ? "-moe" : "");
      REQUIRE(bitsweep::model::WriteTinyModel(streamed, o).ok());
      // The in-memory way: every tensor built, then written in name order.
      const auto config = bitsweep::model::LoadQwen3Config(streamed);
      REQUIRE(config.ok());
      const auto weights = bitsweep::model::RandomQwen3Weights(*config, o.seed);
      const std::vector<std::pair<std::string, at::Tensor>> ordered(weights.begin(),
                                                                    weights.end());
      const std::string whole = root + "/whole-" + dtype + (moe ? "-moe" : "");
      REQUIRE(bitsweep::model::WriteModelFolder(whole, *config, ordered, dtype, o.max_shard_bytes)
                  .ok());
      int files = 0;
      for (const auto& e : std::filesystem::directory_iterator(whole)) {
        const std::string name = e.path().filename().string();
        if (name.find("safetensors") == std::string::npos && name != "config.json") continue;
        ++files;
        std::ifstream a(e.path(), std::ios::binary), b(streamed + "/" + name, std::ios::binary);
        REQUIRE(b.good());
        const std::string x((std::istreambuf_iterator<char>(a)), {});
        const std::string y((std::istreambuf_iterator<char>(b)), {});
        CHECK(x == y);
      }
      CHECK(files > 3);
    }
  }
}

