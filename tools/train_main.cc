// bitsweep-train: trains a small Qwen3-architecture model on a text corpus and writes a Hugging
// Face model folder (config.json, model.safetensors, tokenizer.json).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "tools/bpe_trainer.h"
#include "tools/trainer.h"

namespace fs = std::filesystem;

namespace {

int Fail(const std::string& msg) {
  std::cerr << "bitsweep-train: error: " << msg << "\n";
  return 1;
}

// Plain text as is; .jsonl: the "text" fields joined by blank lines.
bool ReadCorpus(const std::string& path, std::string* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = path + ": cannot open";
    return false;
  }
  if (fs::path(path).extension() != ".jsonl") {
    std::stringstream ss;
    ss << in.rdbuf();
    *out = ss.str();
    return true;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    try {
      auto j = nlohmann::json::parse(line);
      *out += j.at("text").get<std::string>() + "\n\n";
    } catch (const std::exception& e) {
      *err = path + ":" + std::to_string(lineno) + ": " + e.what();
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bitsweep::tools::TrainOptions o;
  std::string corpus_path, tokenizer_path, out;
  int train_bpe = 0;
  double heldout_fraction = 0.05;
  bitsweep::model::RuntimeOptions runtime;
  CLI::App app{"Train a small Qwen3-architecture model (libtorch autograd, AdamW)"};
  app.add_option("--corpus", corpus_path, "Training text (.jsonl: one {\"text\"} per line)")
      ->required();
  app.add_option("--tokenizer", tokenizer_path, "tokenizer.json (or folder) to use");
  app.add_option("--train-bpe", train_bpe, "Instead: learn a byte-level BPE with N merges");
  app.add_option("--out", out, "Output model folder")->required();
  app.add_option("--hidden", o.shape.hidden_size)->capture_default_str();
  app.add_option("--layers", o.shape.num_layers)->capture_default_str();
  app.add_option("--heads", o.shape.num_heads)->capture_default_str();
  app.add_option("--kv-heads", o.shape.num_kv_heads)->capture_default_str();
  app.add_option("--head-dim", o.shape.head_dim)->capture_default_str();
  app.add_option("--intermediate", o.shape.intermediate_size)->capture_default_str();
  app.add_option("--seqlen", o.seqlen)->capture_default_str();
  app.add_option("--batch", o.batch)->capture_default_str();
  app.add_option("--steps", o.steps)->capture_default_str();
  app.add_option("--lr", o.lr)->capture_default_str();
  app.add_option("--warmup", o.warmup)->capture_default_str();
  app.add_option("--eval-every", o.eval_every)->capture_default_str();
  app.add_option("--eval-windows", o.eval_windows, "Held-out windows per evaluation")
      ->capture_default_str();
  app.add_option("--seed", o.shape.seed)->capture_default_str();
  app.add_option("--dtype", o.stored_dtype,
                 "Stored dtype: fp32, bf16, fp16 (f32, f16 also accepted)")
      ->capture_default_str();
  app.add_option("--heldout-fraction", heldout_fraction)->capture_default_str();
  app.add_option("--threads", runtime.threads, "CPU threads (0 = all)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  bitsweep::model::ConfigureRuntime(runtime);
  if (tokenizer_path.empty() == (train_bpe == 0)) {
    return Fail("give exactly one of --tokenizer and --train-bpe");
  }
  std::string text, err;
  if (!ReadCorpus(corpus_path, &text, &err)) return Fail(err);
  fs::create_directories(out);
  const std::string tok_out = out + "/tokenizer.json";
  if (train_bpe > 0) {
    std::ofstream(tok_out) << bitsweep::model::ByteLevelTokenizerJson(
        bitsweep::tools::LearnBpeMerges(text, train_bpe));
  } else {
    const fs::path src = fs::is_directory(tokenizer_path)
                             ? fs::path(tokenizer_path) / "tokenizer.json"
                             : fs::path(tokenizer_path);
    fs::copy_file(src, tok_out, fs::copy_options::overwrite_existing);
  }
  auto tok = bitsweep::model::Tokenizer::Load(tok_out);
  if (!tok.ok()) return Fail(std::string(tok.status().message()));
  const std::vector<int32_t> ids = (*tok)->Encode(text);
  const size_t cut = static_cast<size_t>(ids.size() * (1.0 - heldout_fraction));
  const std::vector<int32_t> train(ids.begin(), ids.begin() + cut),
      held(ids.begin() + cut, ids.end());
  const int64_t vocab = ((*tok)->VocabSize() + 63) / 64 * 64;
  std::cout << "corpus: " << text.size() << " bytes, " << ids.size() << " tokens (vocab "
            << (*tok)->VocabSize() << ", padded " << vocab << "); train " << train.size()
            << ", held-out " << held.size() << std::endl;
  const double unigram = bitsweep::tools::UnigramLoss(train, held, vocab);
  std::printf("unigram baseline: held-out loss %.4f (ppl %.3f)\n", unigram, std::exp(unigram));
  auto r = bitsweep::tools::TrainQwen3(
      train, held, vocab, o, out, [](const bitsweep::tools::TrainReport& r) {
        std::printf("step %6lld  train loss %.4f  held-out loss %.4f (ppl %.3f)  %.0fs\n",
                    static_cast<long long>(r.step), r.train_loss, r.heldout_loss,
                    std::exp(r.heldout_loss), r.seconds);
        std::fflush(stdout);
      });
  if (!r.ok()) return Fail(std::string(r.status().message()));
  const auto& last = r->history.back();
  std::printf(
      "parameters %lld; final train loss %.4f (ppl %.3f), held-out loss %.4f (ppl %.3f; "
      "unigram %.3f); %.0fs; wrote %s\n",
      static_cast<long long>(r->parameters), last.train_loss, std::exp(last.train_loss),
      r->final_heldout_loss, std::exp(r->final_heldout_loss), std::exp(unigram), last.seconds,
      out.c_str());
  return 0;
}
