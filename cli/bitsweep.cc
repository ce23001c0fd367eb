// bitsweep: the user-facing command line. Each subcommand parses its flags into an options
// struct and calls the library; flags and the environment are read only here.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "cli/quantize_command.h"
#include "eval/perplexity.h"
#include "quant/load.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::Status;
using bitsweep::StatusOr;
using nlohmann::json;

int Fail(const Status& s) {
  std::cerr << "bitsweep: error: " << s.message() << "\n";
  return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// --data-dir, else $BITSWEEP_DATA_DIR, else ../shared/data or ./data when present.
std::string ResolveDataDir(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("BITSWEEP_DATA_DIR"); env != nullptr && *env) return env;
  for (const char* d : {"../shared/data", "data"}) {
    if (fs::is_directory(d)) return d;
  }
  return "";
}

class Progress {
 public:
  explicit Progress(std::string label) : label_(std::move(label)), tty_(isatty(2) != 0) {}
  void Update(int64_t done, int64_t total) {
    if (!tty_) return;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
    std::fprintf(stderr, "\r%-10s [%s%s] %lld/%lld windows  %.1fs", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), secs);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

struct EvalFlags {
  std::string model;
  std::string tasks = "wikitext2,c4";
  int64_t seqlen = 2048;
  int64_t max_windows = 0;
  int64_t batch_size = 1;
  std::string dtype = "fp32";
  std::string data_dir;
  bool json = false;
};

int RunEval(const EvalFlags& f) {
  auto dtype = bitsweep::model::ParseComputeDType(f.dtype);
  if (!dtype.ok()) return Fail(dtype.status());
  const std::string data_dir = ResolveDataDir(f.data_dir);
  if (data_dir.empty()) {
    return Fail(absl::InvalidArgumentError(
        "no evaluation data: pass --data-dir or set BITSWEEP_DATA_DIR"));
  }
  std::vector<std::string> tasks = absl::StrSplit(f.tasks, ',', absl::SkipEmpty());
  for (const auto& t : tasks) {
    if (t != "wikitext2" && t != "c4") {
      return Fail(absl::InvalidArgumentError("unknown task \"" + t +
                                             "\" (perplexity tasks: wikitext2, c4)"));
    }
  }
  auto tokenizer = bitsweep::model::Tokenizer::Load(f.model);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  bitsweep::model::LoadOptions lo;
  lo.dtype = *dtype;
  auto loaded = bitsweep::quant::LoadModelForEval(f.model, lo);
  if (!loaded.ok()) return Fail(loaded.status());
  auto& model = loaded->model;
  if (!loaded->description.empty() && !f.json) {
    std::printf("model: %s\n", loaded->description.c_str());
  }

  for (const auto& task : tasks) {
    json extra = json::object();
    StatusOr<std::vector<int32_t>> stream = absl::UnknownError("unset");
    if (task == "wikitext2") {
      stream = bitsweep::eval::WikiText2TestStream(**tokenizer, data_dir);
    } else {
      auto c4 = bitsweep::eval::C4ValidationStream(**tokenizer, data_dir, f.seqlen);
      if (c4.ok()) {
        extra["protocol"] = c4->protocol;
        extra["file"] = c4->file;
        stream = std::move(c4->tokens);
      } else {
        stream = c4.status();
      }
    }
    if (!stream.ok()) return Fail(stream.status());
    Progress progress(task);
    bitsweep::eval::PerplexityOptions po;
    po.seqlen = f.seqlen;
    po.max_windows = f.max_windows;
    po.batch_size = f.batch_size;
    po.progress = [&](int64_t d, int64_t t) { progress.Update(d, t); };
    auto r = bitsweep::eval::EvaluatePerplexity(*model, *stream, po);
    if (!r.ok()) return Fail(r.status());
    json j = {{"task", task},
              {"ppl", r->ppl},
              {"nll", r->nll},
              {"windows", r->windows},
              {"tokens", r->tokens},
              {"predictions", r->predictions},
              {"stream_tokens", r->stream_tokens},
              {"seqlen", f.seqlen},
              {"dtype", f.dtype},
              {"model", f.model},
              {"quantization", loaded->description},
              {"seconds", r->seconds},
              {"tokens_per_second", r->tokens / std::max(r->seconds, 1e-9)}};
    j.update(extra);
    if (f.json) {
      std::cout << j.dump() << std::endl;
    } else {
      std::printf("%-10s ppl %10.4f  nll %.6f  windows %lld  tokens %lld  (%.1fs, %.0f tok/s)\n",
                  task.c_str(), r->ppl, r->nll, static_cast<long long>(r->windows),
                  static_cast<long long>(r->tokens), r->seconds,
                  r->tokens / std::max(r->seconds, 1e-9));
    }
  }
  return 0;
}

int RunTokenize(const std::string& tokenizer_path, bool decode) {
  auto tok = bitsweep::model::Tokenizer::Load(tokenizer_path);
  if (!tok.ok()) return Fail(tok.status());
  std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  if (!decode) {
    std::cout << json((*tok)->Encode(input)).dump() << "\n";
    return 0;
  }
  std::vector<int32_t> ids;
  try {
    json j = json::parse(input);
    ids = j.get<std::vector<int32_t>>();
  } catch (const json::exception& e) {
    return Fail(absl::InvalidArgumentError(std::string("standard input is not a JSON array of "
                                                       "token ids: ") + e.what()));
  }
  auto text = (*tok)->Decode(ids);
  if (!text.ok()) return Fail(text.status());
  std::cout << *text;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "bitsweep: post-training quantization studies of Qwen3 models.\n"
      "Evaluates Hugging Face Qwen3 checkpoints (dense and MoE) on WikiText-2 and C4 perplexity\n"
      "and quantizes them with RTN or GPTQ."};
  app.require_subcommand(1);
  bitsweep::model::RuntimeOptions runtime;
  app.add_option("--threads", runtime.threads, "CPU threads for tensor ops (0 = all cores)")
      ->capture_default_str();

  EvalFlags ef;
  auto* eval = app.add_subcommand("eval", "Evaluate a model folder on perplexity tasks");
  eval->add_option("--model", ef.model, "Hugging Face model folder (config.json, *.safetensors, "
                                        "tokenizer.json)")->required();
  eval->add_option("--tasks", ef.tasks, "Comma-separated tasks: wikitext2, c4")
      ->capture_default_str();
  eval->add_option("--seqlen", ef.seqlen, "Window length in tokens")->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  eval->add_option("--max-windows", ef.max_windows,
                   "Evaluate only the first K windows (0 = all)")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--batch-size", ef.batch_size, "Windows per forward pass")
      ->capture_default_str()->check(CLI::PositiveNumber);
  eval->add_option("--dtype", ef.dtype, "Compute dtype: fp32 or bf16")->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16"}));
  eval->add_option("--data-dir", ef.data_dir,
                   "Evaluation data folder (default: $BITSWEEP_DATA_DIR, ../shared/data, ./data)");
  eval->add_flag("--json", ef.json, "Print one JSON object per task");

  std::string tok_path;
  bool decode = false;
  auto* tokenize = app.add_subcommand(
      "tokenize", "Tokenize standard input and print the ids as a JSON array (or --decode)");
  tokenize->add_option("--tokenizer", tok_path, "tokenizer.json or a folder holding it")
      ->required();
  tokenize->add_flag("--decode", decode, "Read a JSON array of ids and print the text");

  bitsweep::model::TinyModelOptions to;
  std::string tiny_out;
  auto* tiny = app.add_subcommand(
      "make-tiny-model", "Write a deterministic random Qwen3 checkpoint in the HF layout");
  tiny->add_option("--out", tiny_out, "Output folder")->required();
  tiny->add_flag("--moe", to.moe, "Sparse MoE layers (qwen3_moe)");
  tiny->add_option("--seed", to.seed, "Random seed")->capture_default_str();
  tiny->add_option("--dtype", to.dtype, "Stored dtype: f32, bf16, f16")->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  tiny->add_option("--tokenizer", to.tokenizer,
                   "tokenizer.json (or folder) to ship; default: a byte-level tokenizer");
  tiny->add_option("--vocab-size", to.vocab_size, "Embedding rows (0 = tokenizer size, "
                                                  "rounded up to 64)")->capture_default_str();
  tiny->add_option("--hidden-size", to.hidden_size)->capture_default_str();
  tiny->add_option("--intermediate-size", to.intermediate_size)->capture_default_str();
  tiny->add_option("--layers", to.num_layers)->capture_default_str();
  tiny->add_option("--heads", to.num_heads)->capture_default_str();
  tiny->add_option("--kv-heads", to.num_kv_heads)->capture_default_str();
  tiny->add_option("--head-dim", to.head_dim)->capture_default_str();
  tiny->add_option("--experts", to.num_experts)->capture_default_str();
  tiny->add_option("--experts-per-token", to.num_experts_per_tok)->capture_default_str();
  tiny->add_option("--moe-intermediate-size", to.moe_intermediate_size)->capture_default_str();
  tiny->add_option("--untied", [&to](const CLI::results_t&) {
    to.tie_word_embeddings = false;
    return true;
  }, "Separate lm_head weight")->expected(0);
  tiny->add_option("--max-shard-bytes", to.max_shard_bytes,
                   "Split the weights into shards of about this size (0 = one file)")
      ->capture_default_str();

  bitsweep::cli::QuantizeFlags qf;
  auto* quantize = bitsweep::cli::AddQuantizeCommand(app, qf);

  CLI11_PARSE(app, argc, argv);
  bitsweep::model::ConfigureRuntime(runtime);

  if (eval->parsed()) return RunEval(ef);
  if (tokenize->parsed()) return RunTokenize(tok_path, decode);
  if (quantize->parsed()) return bitsweep::cli::RunQuantize(qf, ResolveDataDir(qf.data_dir));
  if (tiny->parsed()) {
    Status s = bitsweep::model::WriteTinyModel(tiny_out, to);
    if (!s.ok()) return Fail(s);
    std::cout << "wrote " << tiny_out << "\n";
    return 0;
  }
  return 0;
}
