// RunJob: one job of a sweep on this machine, as a plain function (the worker process runs it in
// a child process, so that a crash, an out-of-memory kill or a cancellation takes only the job):
//   1. the quantized model: the FP checkpoint itself for the baseline; otherwise the artifact
//      <artifact_root>/<sha256(artifact key)>, produced once by quant::QuantizeFolder under an
//      exclusive flock on <dir>.lock (so concurrent workers sharing the directory never produce
//      it twice) and reused by every later job that needs it;
//   2. the evaluation task (eval::RunEvalTask) on that model;
//   3. the metric rows and the provenance (checkpoint digest, code version, seed, calibration,
//      timings) the coordinator stores.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "common/job_spec.h"
#include "common/status.h"

namespace bitsweep::model {
class Collective;
}  // namespace bitsweep::model

namespace bitsweep::worker {

struct RunnerConfig {
  std::string artifact_root;  // shared directory of quantized models
  std::string data_dir;       // evaluation and calibration data (../shared/data layout)
  // Tensor parallelism: this process is one rank of the job's group (model/tp_run.h); every
  // rank calls RunJob. Rank 0 holds the artifact lock and writes the artifact; all ranks
  // quantize and evaluate their shards and return the same outcome. nullptr: one process.
  std::shared_ptr<const model::Collective> tp;
  // Evaluation memory budget: a model that does not fit is evaluated layer-streamed
  // (quant::LoadModelForEval). 0: the memory available to the job process (on CUDA: its GPU's
  // free memory). A model that does not fit even streamed fails the job, not retryably, naming
  // the model, what it needs and what was offered.
  int64_t max_memory_bytes = 0;
  // Where this rank quantizes and evaluates (its own GPU under tensor parallelism on CUDA).
  c10::Device device = c10::Device(c10::kCPU);
};

struct MetricRow {
  std::string name;
  double value = 0, stderr_ = 0;
  int64_t n = 0;
};

struct JobOutcome {
  std::vector<MetricRow> metrics;
  std::string provenance_json;
  bool artifact_reused = false;
};

// (fraction in [0, 1], phase) — e.g. (0.3, "quantize layer 9/28").
using JobProgress = std::function<void(double, const std::string&)>;

StatusOr<JobOutcome> RunJob(const JobSpec& spec, const RunnerConfig& config,
                            const JobProgress& progress);

// The artifact folder of a spec: <artifact_root>/<sha256(ArtifactKey())>.
std::string ArtifactDir(const std::string& artifact_root, const JobSpec& spec);

}  // namespace bitsweep::worker
