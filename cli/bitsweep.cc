// bitsweep: the user-facing command line. Each subcommand parses its flags into an options
// struct and calls the library; flags and the environment are read only here.
#include <torch/version.h>
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

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/flags.h"
#include "cli/output.h"
#include "cli/quantize_command.h"
#include "cli/service_commands.h"
#include "common/catalog.h"
#include "common/memory.h"
#include "common/sweep_inputs.h"
#include "eval/run_task.h"
#include "model/collective_nccl.h"
#include "model/cuda_info.h"
#include "model/device.h"
#include "model/qwen3.h"
#include "model/runtime.h"
#include "model/tiny_model.h"
#include "model/tokenizer.h"
#include "model/tp_run.h"
#include "quant/load.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace {

namespace fs = std::filesystem;
using bitsweep::Status;
using bitsweep::StatusOr;
using nlohmann::json;

using bitsweep::cli::Fail;

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
  std::string dtype = "auto";
  std::string data_dir;
  bool json = false;
  int tp = 1;
  std::string max_memory;  // "" = the available memory
  std::string device = "auto";
};

int RunEval(const EvalFlags& f) {
  int64_t max_memory = 0;
  if (!f.max_memory.empty()) {
    auto parsed = bitsweep::ParseByteSize(f.max_memory);
    if (!parsed.ok()) {
      return Fail(
          absl::InvalidArgumentError(absl::StrCat("--max-memory: ", parsed.status().message())));
    }
    max_memory = *parsed;
  }
  std::vector<std::string> tasks = absl::StrSplit(f.tasks, ',', absl::SkipEmpty());
  if (tasks.empty()) return Fail(absl::InvalidArgumentError("--tasks names no task"));
  std::vector<bitsweep::TaskKind> kinds;
  for (auto& t : tasks) {
    auto row = bitsweep::LookupTask(t);
    if (!row.ok()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat("--tasks: ", row.status().message())));
    }
    if (std::string_view((*row)->name) != "file") t = (*row)->name;  // "MMLU" is mmlu
    kinds.push_back((*row)->kind);
  }
  if (Status s = bitsweep::CheckModelFolder(f.model); !s.ok()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("--model: ", s.message())));
  }
  auto tp = bitsweep::model::StartTensorParallel(f.tp, f.device);
  if (!tp.ok()) return Fail(tp.status());
  if (tp->launched) return tp->rc;
  const bool leader = tp->rank == 0;  // under TP only rank 0 prints
  const std::string data_dir = ResolveDataDir(f.data_dir);
  auto tokenizer = bitsweep::model::Tokenizer::Load(f.model);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  bitsweep::model::LoadOptions lo;
  lo.tp = tp->tp;
  lo.device = tp->device;  // this rank's: cuda:N+rank under tensor parallelism on CUDA
  auto dtype = bitsweep::model::ResolveComputeDType(f.dtype, lo.device);
  if (!dtype.ok()) return Fail(dtype.status());
  lo.dtype = *dtype;
  auto loaded = bitsweep::quant::LoadModelForEval(f.model, lo, max_memory);
  if (!loaded.ok()) return Fail(loaded.status());
  auto& model = loaded->model;
  if (!loaded->description.empty() && !f.json && leader) {
    std::printf("model: %s\n", loaded->description.c_str());
  }
  if (loaded->memory->streamed && !f.json && leader) {
    std::printf("memory: %s\n", loaded->memory->reason.c_str());
  }

  for (size_t i = 0; i < tasks.size(); ++i) {
    const bool ppl = kinds[i] == bitsweep::TaskKind::kPerplexity;
    std::string label = tasks[i];
    if (bitsweep::IsTaskPath(label)) label = fs::path(label).stem().string();
    Progress progress(label, ppl ? "windows" : "requests");
    bitsweep::eval::TaskSettings s;
    s.task = tasks[i];
    s.data_dir = data_dir;
    s.seqlen = f.seqlen;
    s.max_windows = f.max_windows;
    s.ppl_batch_size = f.batch_size;
    s.limit = f.limit;
    s.num_fewshot = f.num_fewshot;
    s.batch_size = f.batch_size_given ? f.batch_size : 16;
    s.prefix_reuse = !f.no_prefix_reuse;
    s.stream_group_bytes = loaded->memory->activation_bytes;
    s.progress = [&](int64_t d, int64_t t) {
      if (leader) progress.Update(d, t);
    };
    auto out = bitsweep::eval::RunEvalTask(*model, **tokenizer, s);
    if (!out.ok()) return Fail(out.status());
    if (!leader) continue;
    if (f.json) {
      json j = json::parse(out->json);
      j["dtype"] = bitsweep::model::ComputeDTypeName(lo.dtype);
      j["model"] = f.model;
      j["quantization"] = loaded->description;
      j["tensor_parallel"] = f.tp;
      j["memory"] = json::parse(bitsweep::quant::MemoryPlanJson(*loaded->memory));
      j["device"] = lo.device.str();
      std::cout << j.dump() << std::endl;
    } else {
      std::fputs(out->summary.c_str(), stdout);
    }
  }
  return 0;
}

// The catalog's method names (true) or task names with their kinds (false), for help texts.
std::string CatalogNames(bool methods) {
  std::vector<std::string> names;
  if (methods) {
    for (const bitsweep::MethodInfo* m : bitsweep::QuantizationMethods()) names.push_back(m->name);
  } else {
    for (const bitsweep::TaskInfo& t : bitsweep::Tasks()) {
      names.push_back(absl::StrCat(t.name, " (", bitsweep::TaskKindName(t.kind), ")"));
    }
  }
  return absl::StrJoin(names, ", ");
}

std::string CatalogSummary() {
  std::string out;
  for (const bitsweep::MethodInfo& m : bitsweep::Methods()) {
    absl::StrAppend(&out, "method ", m.name, ": ", m.description, "\n");
  }
  for (const bitsweep::TaskInfo& t : bitsweep::Tasks()) {
    absl::StrAppend(&out, "task ", t.name, " (", bitsweep::TaskKindName(t.kind),
                    "): ", t.description, "\n");
  }
  return out;
}

// `bitsweep --version`: the version, then what this build can run on.
std::string VersionText() {
  const bool cuda = bitsweep::model::CudaCompiledIn();
  return absl::StrCat(
      "bitsweep ", BITSWEEP_VERSION, "\nlibtorch ", TORCH_VERSION, "\nCUDA ",
      cuda ? absl::StrCat("on (", bitsweep::model::VisibleCudaDevices(), " GPUs visible)") : "off",
      "\nNCCL ", bitsweep::model::NcclAvailable() ? "on" : "off");
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
  bitsweep::model::SetCommandLine(argc, argv);
  CLI::App app{
      "bitsweep: post-training quantization studies of Qwen3 models.\n"
      "Quantizes Hugging Face Qwen3 checkpoints (dense and MoE) with the methods of its catalog\n"
      "(" +
      CatalogNames(true) + ")\nand evaluates them on its tasks (" + CatalogNames(false) + ")."};
  app.require_subcommand(1);
  app.footer(bitsweep::cli::kExitCodesHelp);
  // Subcommands inherit this: an option a verb does not know (--threads) goes to the main
  // command, so global options may come before or after the verb.
  app.fallthrough();
  app.set_version_flag("--version", VersionText, "Print the version and the build, and exit");
  bitsweep::model::RuntimeOptions runtime;
  app.add_option(
         "--threads", runtime.threads,
         "CPU threads for tensor ops (0 = OMP_NUM_THREADS, else the CPUs this process may use)")
      ->capture_default_str();

  EvalFlags ef;
  auto* eval = app.add_subcommand(
      "eval", "Evaluate a model folder (original or quantized) on perplexity and accuracy tasks");
  eval->add_option("--model", ef.model,
                   "Hugging Face model folder (config.json, *.safetensors, "
                   "tokenizer.json)")
      ->required();
  eval->add_option("--tasks", ef.tasks,
                   "Comma-separated tasks: " + CatalogNames(false) +
                       " (any case); or a path to a .jsonl file of {\"context\", \"choices\", "
                       "\"gold\"} lines (a multiple-choice task scored as lm-eval does)")
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
  eval->add_option("--dtype", ef.dtype,
                   "Compute dtype: fp32, bf16, or auto (bf16 on CUDA, fp32 on the CPU)")
      ->capture_default_str()
      ->transform(bitsweep::cli::DTypeFlag({"auto", "fp32", "bf16"}));
  eval->add_option("--data-dir", ef.data_dir,
                   "Evaluation data folder (default: $BITSWEEP_DATA_DIR, ../shared/data, ./data)");
  eval->add_flag("--json", ef.json, "Print one JSON object per task");
  eval->add_option("--max-memory", ef.max_memory,
                   "Memory budget, e.g. 512MiB or 4GiB (default: the memory available to this "
                   "process). A model that does not fit is evaluated layer-streamed: one decoder "
                   "layer in memory at a time, with the same results; the choice and its reason "
                   "are in --json's \"memory\"");
  eval->add_option("--device", ef.device,
                   "cpu, cuda, cuda:N, or auto (CUDA when this build has it and a GPU is "
                   "visible, else cpu)")
      ->capture_default_str();
  eval->add_option("--tp", ef.tp,
                   "Tensor-parallel size: run as N rank processes (Gloo on CPU; on CUDA one GPU per "
                   "rank from --device on, over NCCL), each holding 1/N "
                   "of the model; results equal those with 1")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));

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
  tiny->add_option("--dtype", to.dtype, "Stored dtype: fp32, bf16 or fp16 (f32, f16 also accepted)")
      ->capture_default_str()
      ->transform(bitsweep::cli::DTypeFlag({"fp32", "bf16", "fp16"}));
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

  bool markdown = false;
  auto* catalog = app.add_subcommand(
      "catalog", "Print the method and task catalogs (the README's generated tables)");
  catalog->add_flag("--markdown", markdown,
                    "Print the README's generated sections with their markers (as they must "
                    "read in README.md)");

  bitsweep::cli::QuantizeFlags qf;
  auto* quantize = bitsweep::cli::AddQuantizeCommand(app, qf);
  bitsweep::cli::ServiceFlags sf;
  bitsweep::cli::AddServiceCommands(app, sf);
  std::string local_data_dir;
  app.get_subcommand("local")->add_option(
      "--data-dir", local_data_dir,
      "Evaluation data for the workers (default: $BITSWEEP_DATA_DIR, ../shared/data, ./data)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints and exits 0; every parse error is bad input.
    return app.exit(e) == 0 ? bitsweep::cli::kExitOk : bitsweep::cli::kExitUsage;
  }
  bitsweep::model::ConfigureRuntime(runtime);

  {
    const int rc = bitsweep::cli::RunServiceCommand(app, sf, ResolveDataDir(local_data_dir));
    if (rc >= 0) return rc;
  }
  if (eval->parsed()) {
    ef.batch_size_given = eval->count("--batch-size") > 0;
    return RunEval(ef);
  }
  if (tokenize->parsed()) return RunTokenize(tok_path, decode);
  if (catalog->parsed()) {
    std::fputs(markdown ? bitsweep::ReadmeGeneratedSections().c_str() : CatalogSummary().c_str(),
               stdout);
    return 0;
  }
  if (quantize->parsed()) return bitsweep::cli::RunQuantize(qf, ResolveDataDir(qf.data_dir));
  if (tiny->parsed()) {
    Status s = bitsweep::model::WriteTinyModel(tiny_out, to);
    if (!s.ok()) return Fail(s);
    std::cout << "wrote " << tiny_out << "\n";
    return 0;
  }
  return 0;
}
