#include "worker/job_runner.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/catalog.h"
#include "eval/run_task.h"
#include "model/collective.h"
#include "model/qwen3.h"
#include "model/tokenizer.h"
#include "quant/export.h"
#include "quant/load.h"
#include "quant/pipeline.h"

#ifndef BITSWEEP_VERSION
#define BITSWEEP_VERSION "dev"
#endif

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The job's quant config as `bitsweep quantize` takes it: the normalised spec sets every field
// and option (its method's own, so none is refused), and calibration only where it is used.
quant::QuantizeRequest ToRequest(const JobSpec& s, const std::string& out,
                                 const std::string& data_dir) {
  quant::QuantizeRequest r;
  r.model = s.model;
  r.out = out;
  r.data_dir = data_dir;
  r.method = s.quant.method;
  r.wbits = s.quant.wbits;
  if (s.quant.abits > 0) r.abits = s.quant.abits;
  const MethodInfo& row = **LookupMethod(s.quant.method);
  if (row.group_size_applies) r.group = s.quant.group_size;
  r.options = s.quant.options;
  r.overrides = s.quant.overrides;
  if (s.calibration) {
    r.calib = s.calibration->source;
    r.nsamples = s.calibration->nsamples;
    r.seqlen = s.calibration->seqlen;
    r.seed = s.calibration->seed;
    r.dtype = s.calibration->dtype;
  }
  return r;
}

// An exclusive advisory lock held for the object's lifetime.
class FileLock {
 public:
  static StatusOr<std::unique_ptr<FileLock>> Acquire(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return absl::UnavailableError(absl::StrCat(path, ": cannot open lock file"));
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return absl::UnavailableError(absl::StrCat(path, ": flock failed"));
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// sha256 over config.json and the safetensors index (or the single file's size): cheap, and
// changes whenever the checkpoint does.
std::string CheckpointDigest(const std::string& dir) {
  std::string blob;
  for (const char* f :
       {"config.json", "model.safetensors.index.json", "quantization_config.json"}) {
    std::ifstream in(fs::path(dir) / f, std::ios::binary);
    if (in) blob += std::string((std::istreambuf_iterator<char>(in)), {});
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") {
      blob += e.path().filename().string() + ":" + std::to_string(e.file_size(ec));
    }
  }
  return Sha256Hex(blob);
}

// The data files the evaluation read, each with its SHA-256 and size, so the results' provenance
// (and `bitsweep report`'s appendix) says which bytes were scored: the file the task names in its
// result (C4's shard, a multiple-choice task's source, a .jsonl task) or WikiText-2's test file.
// Folders (MMLU's) and files that cannot be read are left out.
json DataFiles(const json& eval, const std::string& task, const std::string& data_dir) {
  std::vector<std::string> paths;
  if (task == "wikitext2") paths.push_back(data_dir + "/wikitext2/wiki.test.raw");
  for (const char* key : {"file", "source"}) {
    if (eval.contains(key) && eval[key].is_string()) paths.push_back(eval[key].get<std::string>());
  }
  json out = json::array();
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    std::ifstream in(path, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    if (!in.good() && !in.eof()) continue;
    out.push_back({{"path", path}, {"sha256", Sha256Hex(bytes)}, {"bytes", bytes.size()}});
  }
  return out;
}

}  // namespace

std::string ArtifactDir(const std::string& artifact_root, const JobSpec& spec) {
  return (fs::path(artifact_root) / Sha256Hex(spec.ArtifactKey())).string();
}

StatusOr<JobOutcome> RunJob(const JobSpec& spec, const RunnerConfig& config,
                            const JobProgress& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  JobOutcome out;
  json prov = {{"code_version", BITSWEEP_VERSION},
               {"job_key", spec.JobKey()},
               {"artifact_key", spec.ArtifactKey()},
               {"model", spec.model}};
  std::string model_dir = spec.model;
  double quantize_seconds = 0;
  const bool baseline = spec.quant.method == "fp";  // evaluates the checkpoint itself
  if (!baseline) {
    if (config.artifact_root.empty()) {
      return absl::InvalidArgumentError("no artifact directory configured (--artifacts)");
    }
    std::error_code ec;
    fs::create_directories(config.artifact_root, ec);
    model_dir = ArtifactDir(config.artifact_root, spec);
    // Under tensor parallelism rank 0 holds the lock and decides; every rank quantizes its
    // shard and rank 0 writes the artifact (quant::QuantizeFolder).
    const int world = config.tp ? config.tp->world_size() : 1;
    const bool leader = !config.tp || config.tp->rank() == 0;
    std::unique_ptr<FileLock> lock;
    int64_t produce = 0;
    if (leader) {
      ASSIGN_OR_RETURN(lock, FileLock::Acquire(model_dir + ".lock"));
      produce = fs::exists(fs::path(model_dir) / "quantization_config.json") ? 0 : 1;
      if (produce && fs::exists(model_dir)) {
        fs::remove_all(model_dir, ec);  // a crashed producer's leftovers
      }
    }
    if (world > 1) {
      at::Tensor flag = at::full({1}, produce, at::kLong);
      config.tp->Broadcast(flag, 0);
      produce = flag.item<int64_t>();
    }
    if (!produce) {
      out.artifact_reused = true;
    } else {
      const auto tq = std::chrono::steady_clock::now();
      quant::QuantizeRequest request = ToRequest(spec, model_dir, config.data_dir);
      request.tp = world;
      request.device = config.device.str();
      auto r = quant::QuantizeFolder(
          request,
          [&](int64_t done, int64_t total) {
            if (progress) {
              progress(0.7 * static_cast<double>(done) / static_cast<double>(total),
                       absl::StrCat("quantize layer ", done, "/", total));
            }
          },
          config.tp);
      if (!r.ok()) return r.status();
      quantize_seconds = Seconds(tq);
    }
    if (world > 1) config.tp->Barrier();  // rank 0 has moved the artifact into place
  }
  prov["artifact_reused"] = out.artifact_reused;
  prov["quantize_seconds"] = quantize_seconds;
  if (!baseline) {
    // The artifact's per-layer losses (`bitsweep describe job` shows them), whether this job
    // quantized it or found it made.
    std::ifstream qc(fs::path(model_dir) / "quantization_config.json");
    const json q = json::parse(qc, nullptr, /*allow_exceptions=*/false);
    if (q.is_object()) prov["layer_losses"] = quant::LayerLosses(q);
    // The recipe's average weight bits (mixed recipes: quant/pipeline.cc).
    if (q.is_object() && q.contains("avg_wbits")) prov["avg_wbits"] = q["avg_wbits"];
  }
  prov["checkpoint_digest"] = CheckpointDigest(spec.model);
  if (spec.calibration) {
    prov["calibration"] = {{"source", spec.calibration->source},
                           {"nsamples", spec.calibration->nsamples},
                           {"seqlen", spec.calibration->seqlen},
                           {"seed", spec.calibration->seed},
                           {"dtype", spec.calibration->dtype}};
  }

  if (progress) progress(0.7, "load model for eval");
  ASSIGN_OR_RETURN(auto tokenizer, model::Tokenizer::Load(spec.model));
  ASSIGN_OR_RETURN(model::ComputeDType dtype, model::ParseComputeDType(spec.eval.dtype));
  model::LoadOptions lo;
  lo.dtype = dtype;
  lo.tp = config.tp;
  lo.device = config.device;
  StatusOr<quant::LoadedModel> load = quant::LoadModelForEval(model_dir, lo, config.max_memory_bytes);
  if (!load.ok() && load.status().code() == absl::StatusCode::kResourceExhausted) {
    // Not even one layer fits: no other attempt on this offer does better (not retried).
    return absl::InvalidArgumentError(absl::StrCat("model ", spec.model, " cannot run on ",
                                                   config.device.str(), " even layer-streamed: ",
                                                   load.status().message()));
  }
  if (!load.ok()) return load.status();
  quant::LoadedModel loaded = *std::move(load);
  eval::TaskSettings s;
  s.task = spec.eval.task;
  s.data_dir = config.data_dir;
  if (spec.eval.seqlen > 0) s.seqlen = spec.eval.seqlen;
  // The limit counts windows for perplexity tasks and documents for the others.
  ASSIGN_OR_RETURN(const TaskInfo* task_row, LookupTask(spec.eval.task));
  const bool perplexity = task_row->kind == TaskKind::kPerplexity;
  s.max_windows = perplexity ? spec.eval.limit : 0;
  s.limit = perplexity ? 0 : spec.eval.limit;
  s.ppl_batch_size = std::max<int64_t>(1, spec.eval.batch_size);
  s.stream_group_bytes = loaded.memory->activation_bytes;
  if (spec.eval.num_fewshot >= 0) s.num_fewshot = spec.eval.num_fewshot;
  const std::string task = spec.eval.task;
  s.progress = [&](int64_t done, int64_t total) {
    if (progress && total > 0) {
      progress(0.7 + 0.3 * static_cast<double>(done) / static_cast<double>(total),
               absl::StrCat("eval ", task, " ", done, "/", total));
    }
  };
  const auto te = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(eval::TaskOutcome r, eval::RunEvalTask(*loaded.model, *tokenizer, s));
  for (const auto& m : r.metrics) out.metrics.push_back({m.name, m.value, m.stderr_, m.n});
  prov["eval_seconds"] = Seconds(te);
  prov["seconds"] = Seconds(t0);
  prov["quant"] = DescribeQuant(spec.quant);
  prov["tensor_parallel"] = config.tp ? config.tp->world_size() : 1;
  prov["device"] = config.device.str();
  if (!loaded.description.empty()) prov["loaded_as"] = loaded.description;
  prov["memory"] = json::parse(quant::MemoryPlanJson(*loaded.memory));
  prov["eval"] = json::parse(r.json);
  prov["data_files"] = DataFiles(prov["eval"], spec.eval.task, config.data_dir);
  out.provenance_json = prov.dump();
  return out;
}

}  // namespace bitsweep::worker
