// bitsweep: the user-facing command line. Each subcommand parses its flags into an options
// struct and calls the library; flags and the environment are read only here.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "cli/quantize_command.h"
#include "eval/loglikelihood.h"
#include "eval/mmlu.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "quant/load.h"

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
  Progress(std::string label, std::string unit)
      : label_(std::move(label)), unit_(std::move(unit)), tty_(isatty(2) != 0) {}
  void Update(int64_t done, int64_t total) {
    if (!tty_) return;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const int width = 30;
    const int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
    std::fprintf(stderr, "\r%-13s [%s%s] %lld/%lld %s  %.1fs", label_.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total), unit_.c_str(), secs);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::string label_, unit_;
  bool tty_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

struct EvalFlags {
  std::string model;
  std::string tasks = "wikitext2,c4";
  int64_t seqlen = 2048;
  int64_t max_windows = 0;
  int64_t batch_size = 1;
  bool batch_size_given = false;
  int64_t limit = 0;
  int64_t num_fewshot = 5;
  bool no_prefix_reuse = false;
  std::string dtype = "fp32";
  std::string data_dir;
  bool json = false;
};

enum class TaskKind { kPerplexity, kChoice, kMmlu };

StatusOr<TaskKind> ClassifyTask(const std::string& t) {
  if (t == "wikitext2" || t == "c4") return TaskKind::kPerplexity;
  if (t == "mmlu") return TaskKind::kMmlu;
  const auto& names = bitsweep::eval::ChoiceTaskNames();
  if (std::find(names.begin(), names.end(), t) != names.end()) return TaskKind::kChoice;
  if (t.size() > 6 && t.compare(t.size() - 6, 6, ".jsonl") == 0) return TaskKind::kChoice;
  return absl::InvalidArgumentError(
      "unknown task \"" + t +
      "\" (tasks: wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, "
      "mmlu, or a path to a .jsonl file of {context, choices, gold} lines)");
}

json GroupJson(const bitsweep::eval::MmluGroup& g) {
  return {{"acc", g.acc.value}, {"stderr", g.acc.stderr_}, {"n", g.n}};
}

StatusOr<json> RunPerplexityTask(const EvalFlags& f, const std::string& task,
                                 const bitsweep::model::Qwen3Model& model,
                                 const bitsweep::model::Tokenizer& tokenizer,
                                 const std::string& data_dir) {
  json extra = json::object();
  StatusOr<std::vector<int32_t>> stream = absl::UnknownError("unset");
  if (task == "wikitext2") {
    stream = bitsweep::eval::WikiText2TestStream(tokenizer, data_dir);
  } else {
    auto c4 = bitsweep::eval::C4ValidationStream(tokenizer, data_dir, f.seqlen);
    if (c4.ok()) {
      extra["protocol"] = c4->protocol;
      extra["file"] = c4->file;
      stream = std::move(c4->tokens);
    } else {
      stream = c4.status();
    }
  }
  if (!stream.ok()) return stream.status();
  Progress progress(task, "windows");
  bitsweep::eval::PerplexityOptions po;
  po.seqlen = f.seqlen;
  po.max_windows = f.max_windows;
  po.batch_size = f.batch_size;
  po.progress = [&](int64_t d, int64_t t) { progress.Update(d, t); };
  ASSIGN_OR_RETURN(auto r, bitsweep::eval::EvaluatePerplexity(model, *stream, po));
  json j = {{"task", task},
            {"ppl", r.ppl},
            {"nll", r.nll},
            {"windows", r.windows},
            {"tokens", r.tokens},
            {"predictions", r.predictions},
            {"stream_tokens", r.stream_tokens},
            {"seqlen", f.seqlen},
            {"seconds", r.seconds},
            {"tokens_per_second", r.tokens / std::max(r.seconds, 1e-9)}};
  j.update(extra);
  if (!f.json) {
    std::printf("%-13s ppl %10.4f  nll %.6f  windows %lld  tokens %lld  (%.1fs, %.0f tok/s)\n",
                task.c_str(), r.ppl, r.nll, static_cast<long long>(r.windows),
                static_cast<long long>(r.tokens), r.seconds, r.tokens / std::max(r.seconds, 1e-9));
  }
  return j;
}

bitsweep::eval::LoglikelihoodOptions EngineOptions(const EvalFlags& f) {
  bitsweep::eval::LoglikelihoodOptions o;
  o.batch_size = f.batch_size_given ? f.batch_size : 16;
  o.prefix_reuse = !f.no_prefix_reuse;
  return o;
}

json EngineJson(const bitsweep::eval::LoglikelihoodRun& e) {
  return {{"forwards", e.forwards}, {"tokens", e.tokens}, {"padded_tokens", e.padded_tokens}};
}

StatusOr<json> RunChoiceTask(const EvalFlags& f, const std::string& task,
                             const bitsweep::model::Qwen3Model& model,
                             const bitsweep::model::Tokenizer& tokenizer,
                             const std::string& data_dir) {
  ASSIGN_OR_RETURN(auto data, bitsweep::eval::LoadChoiceTask(task, data_dir));
  Progress progress(data.name, "requests");
  bitsweep::eval::ChoiceTaskOptions o;
  o.limit = f.limit;
  o.engine = EngineOptions(f);
  o.engine.progress = [&](int64_t d, int64_t t) { progress.Update(d, t); };
  ASSIGN_OR_RETURN(auto r, bitsweep::eval::EvaluateChoiceTask(model, tokenizer, data, o));
  json stderr_j = {{"acc", r.acc.stderr_}};
  json j = {{"task", data.name}, {"acc", r.acc.value}};
  if (r.has_acc_norm) {
    j["acc_norm"] = r.acc_norm.value;
    stderr_j["acc_norm"] = r.acc_norm.stderr_;
  }
  j["stderr"] = stderr_j;
  j["n"] = r.n;
  j["available"] = r.available;
  j["limited"] = r.limited;
  if (r.limited) j["limit"] = f.limit;
  j["num_fewshot"] = 0;
  j["source"] = data.source;
  if (!data.note.empty()) j["note"] = data.note;
  j["seconds"] = r.engine.seconds;
  j["engine"] = EngineJson(r.engine);
  if (!f.json) {
    std::printf("%-13s acc %.4f ± %.4f", data.name.c_str(), r.acc.value, r.acc.stderr_);
    if (r.has_acc_norm) std::printf("  acc_norm %.4f ± %.4f", r.acc_norm.value, r.acc_norm.stderr_);
    std::printf("  n %lld", static_cast<long long>(r.n));
    if (r.limited)
      std::printf(" (--limit: first %lld of %lld)", static_cast<long long>(r.n),
                  static_cast<long long>(r.available));
    std::printf("  (%.1fs)\n", r.engine.seconds);
    if (!data.note.empty()) std::printf("%-13s note: %s\n", "", data.note.c_str());
  }
  return j;
}

StatusOr<json> RunMmluTask(const EvalFlags& f, const bitsweep::model::Qwen3Model& model,
                           const bitsweep::model::Tokenizer& tokenizer,
                           const std::string& data_dir) {
  Progress progress("mmlu", "requests");
  bitsweep::eval::MmluOptions o;
  o.ntrain = f.num_fewshot;
  o.limit = f.limit;
  o.engine = EngineOptions(f);
  o.engine.progress = [&](int64_t d, int64_t t) { progress.Update(d, t); };
  ASSIGN_OR_RETURN(auto r, bitsweep::eval::EvaluateMmlu(model, tokenizer, data_dir, o));
  json j = {{"task", "mmlu"},
            {"acc", r.overall.acc.value},
            {"stderr", {{"acc", r.overall.acc.stderr_}}},
            {"n", r.n},
            {"available", r.available},
            {"limited", r.limited},
            {"num_fewshot", f.num_fewshot},
            {"shots_reduced", r.shots_reduced}};
  if (r.limited) j["limit"] = f.limit;
  json cats = json::object(), subcats = json::object(), subjects = json::object();
  for (const auto& [k, v] : r.categories) cats[k] = GroupJson(v);
  for (const auto& [k, v] : r.subcategories) subcats[k] = GroupJson(v);
  for (const auto& [k, v] : r.subjects) subjects[k] = GroupJson(v);
  j["categories"] = cats;
  j["subcategories"] = subcats;
  j["subjects"] = subjects;
  j["seconds"] = r.engine.seconds;
  j["engine"] = EngineJson(r.engine);
  if (!f.json) {
    std::printf("%-13s acc %.4f ± %.4f  n %lld", "mmlu", r.overall.acc.value, r.overall.acc.stderr_,
                static_cast<long long>(r.n));
    if (r.limited)
      std::printf(" (--limit: first %lld questions of each subject)",
                  static_cast<long long>(f.limit));
    std::printf("  (%.1fs)\n", r.engine.seconds);
    for (const auto& [k, v] : r.categories) {
      std::printf("  %-32s acc %.4f ± %.4f  n %lld\n", k.c_str(), v.acc.value, v.acc.stderr_,
                  static_cast<long long>(v.n));
    }
  }
  return j;
}

int RunEval(const EvalFlags& f) {
  auto dtype = bitsweep::model::ParseComputeDType(f.dtype);
  if (!dtype.ok()) return Fail(dtype.status());
  std::vector<std::string> tasks = absl::StrSplit(f.tasks, ',', absl::SkipEmpty());
  if (tasks.empty()) return Fail(absl::InvalidArgumentError("--tasks names no task"));
  std::vector<TaskKind> kinds;
  bool needs_data = false;
  for (const auto& t : tasks) {
    auto k = ClassifyTask(t);
    if (!k.ok()) return Fail(k.status());
    kinds.push_back(*k);
    needs_data = needs_data || t.find(".jsonl") == std::string::npos;
  }
  const std::string data_dir = ResolveDataDir(f.data_dir);
  if (needs_data && data_dir.empty()) {
    return Fail(
        absl::InvalidArgumentError("no evaluation data: pass --data-dir or set BITSWEEP_DATA_DIR"));
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

  for (size_t i = 0; i < tasks.size(); ++i) {
    StatusOr<json> j = absl::UnknownError("unset");
    switch (kinds[i]) {
      case TaskKind::kPerplexity:
        j = RunPerplexityTask(f, tasks[i], *model, **tokenizer, data_dir);
        break;
      case TaskKind::kChoice:
        j = RunChoiceTask(f, tasks[i], *model, **tokenizer, data_dir);
        break;
      case TaskKind::kMmlu:
        j = RunMmluTask(f, *model, **tokenizer, data_dir);
        break;
    }
    if (!j.ok()) return Fail(j.status());
    (*j)["dtype"] = f.dtype;
    (*j)["model"] = f.model;
    (*j)["quantization"] = loaded->description;
    if (f.json) std::cout << j->dump() << std::endl;
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
                                                       "token ids: ") +
                                           e.what()));
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
      "Quantizes Hugging Face Qwen3 checkpoints (dense and MoE) with RTN, GPTQ, AWQ, SmoothQuant\n"
      "or BiLLM, and evaluates them on WikiText-2 and C4 perplexity, PIQA, ARC-Easy,\n"
      "ARC-Challenge, HellaSwag, WinoGrande, BoolQ and MMLU."};
  app.require_subcommand(1);
  bitsweep::model::RuntimeOptions runtime;
  app.add_option("--threads", runtime.threads, "CPU threads for tensor ops (0 = all cores)")
      ->capture_default_str();

  EvalFlags ef;
  auto* eval = app.add_subcommand(
      "eval", "Evaluate a model folder (original or quantized) on perplexity and accuracy tasks");
  eval->add_option("--model", ef.model,
                   "Hugging Face model folder (config.json, *.safetensors, "
                   "tokenizer.json)")
      ->required();
  eval->add_option("--tasks", ef.tasks,
                   "Comma-separated tasks: wikitext2, c4 (perplexity); piqa, arc_easy, "
                   "arc_challenge, hellaswag, winogrande, boolq (zero-shot, lm-eval scoring); "
                   "mmlu (k-shot, Hendrycks format); or a path to a .jsonl file of "
                   "{\"context\", \"choices\", \"gold\"} lines")
      ->capture_default_str();
  eval->add_option("--seqlen", ef.seqlen, "Window length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(2, 1 << 20));
  eval->add_option("--max-windows", ef.max_windows, "Evaluate only the first K windows (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--batch-size", ef.batch_size,
                   "Windows (perplexity; default 1) or packed rows (accuracy tasks; default 16) "
                   "per forward pass")
      ->check(CLI::PositiveNumber);
  eval->add_option("--limit", ef.limit,
                   "Accuracy tasks: only the first N documents (MMLU: of each subject); the "
                   "output says so (0 = all)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  eval->add_option("--num-fewshot", ef.num_fewshot, "MMLU: dev examples per prompt")
      ->capture_default_str()
      ->check(CLI::Range(0, 5));
  eval->add_flag("--no-prefix-reuse", ef.no_prefix_reuse,
                 "Accuracy tasks: one row per request instead of packing shared prefixes "
                 "(same scores; slower)");
  eval->add_option("--dtype", ef.dtype, "Compute dtype: fp32 or bf16")
      ->capture_default_str()
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
  auto* tiny = app.add_subcommand("make-tiny-model",
                                  "Write a deterministic random Qwen3 checkpoint in the HF layout");
  tiny->add_option("--out", tiny_out, "Output folder")->required();
  tiny->add_flag("--moe", to.moe, "Sparse MoE layers (qwen3_moe)");
  tiny->add_option("--seed", to.seed, "Random seed")->capture_default_str();
  tiny->add_option("--dtype", to.dtype, "Stored dtype: f32, bf16, f16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  tiny->add_option("--tokenizer", to.tokenizer,
                   "tokenizer.json (or folder) to ship; default: a byte-level tokenizer");
  tiny->add_option("--vocab-size", to.vocab_size,
                   "Embedding rows (0 = tokenizer size, "
                   "rounded up to 64)")
      ->capture_default_str();
  tiny->add_option("--hidden-size", to.hidden_size)->capture_default_str();
  tiny->add_option("--intermediate-size", to.intermediate_size)->capture_default_str();
  tiny->add_option("--layers", to.num_layers)->capture_default_str();
  tiny->add_option("--heads", to.num_heads)->capture_default_str();
  tiny->add_option("--kv-heads", to.num_kv_heads)->capture_default_str();
  tiny->add_option("--head-dim", to.head_dim)->capture_default_str();
  tiny->add_option("--experts", to.num_experts)->capture_default_str();
  tiny->add_option("--experts-per-token", to.num_experts_per_tok)->capture_default_str();
  tiny->add_option("--moe-intermediate-size", to.moe_intermediate_size)->capture_default_str();
  tiny->add_option(
          "--untied",
          [&to](const CLI::results_t&) {
            to.tie_word_embeddings = false;
            return true;
          },
          "Separate lm_head weight")
      ->expected(0);
  tiny->add_option("--max-shard-bytes", to.max_shard_bytes,
                   "Split the weights into shards of about this size (0 = one file)")
      ->capture_default_str();

  bitsweep::cli::QuantizeFlags qf;
  auto* quantize = bitsweep::cli::AddQuantizeCommand(app, qf);

  CLI11_PARSE(app, argc, argv);
  bitsweep::model::ConfigureRuntime(runtime);

  if (eval->parsed()) {
    ef.batch_size_given = eval->count("--batch-size") > 0;
    return RunEval(ef);
  }
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
