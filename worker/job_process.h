// The job process protocol: the worker runs each leased job in a child process (`bitsweep-worker
// run-job`), so that a crash, an out-of-memory kill or a cancellation costs only that attempt.
// Both sides live here, with the files they share in a scratch folder:
//   <scratch>/job-<id>.json           the JobSpec (JobSpecToJson), written by the parent
//   <scratch>/job-<id>.json.progress  "<fraction>\t<phase>", rewritten (atomically) by the child
//   <scratch>/job-<id>.json.result    {"metrics": [{"name", "value", "stderr", "n"}],
//                                     "provenance": {...}} or {"error": message, "code": absl
//                                     code}, written once (atomically) by the child
//   <scratch>/job-<id>.json.log       the child's standard output and error (and its ranks'),
//                                     whose end (LogTail) the worker reports with Complete or Fail
// and the child's exit code: 0 ok, 2 the job cannot succeed anywhere (bad input, or a metric
// that is not finite: "ppl is inf: the quantized model diverges"; not retried), 1 any other
// failure, 127 when the binary cannot be executed. Whatever the result file holds (not JSON,
// missing keys, wrong types), the parent reads it without crashing: an unreadable result fails
// the job.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/path_roots.h"
#include "common/status.h"
#include "worker/job_runner.h"

namespace bitsweep::worker {

inline constexpr int kJobExitOk = 0;
inline constexpr int kJobExitFailed = 1;
inline constexpr int kJobExitBadInput = 2;  // the job cannot succeed anywhere: not retried
inline constexpr int kJobExitNotExecuted = 127;
// The most of a job process's output the worker reports (CompleteRequest.log_tail).
inline constexpr size_t kJobLogTailBytes = 64 * 1024;

struct JobProcessOptions {
  std::string self_exe = "/proc/self/exe";  // the binary whose `run-job` runs the job
  int threads = 0;                          // --threads of the child (0 = all cores)
  std::string artifact_root;                // --artifacts of the child
  std::string data_dir;                     // --data-dir of the child
  // Where the job runs (worker/device_offer.h): the child's --device ("cpu" or "cuda": rank r
  // of a tensor-parallel job on cuda:r) and its CUDA_VISIBLE_DEVICES, which the child gets in
  // place of the worker's ("" on the CPU: the job sees no GPU).
  std::string device = "cpu";
  std::string cuda_visible_devices;
  // The child's memory budget (its --max-memory): 0 = what is free when it runs (the GPU's
  // free memory on CUDA, the available memory on the CPU).
  int64_t max_memory_bytes = 0;
  PathRoots roots;                          // --model-root / --data-root of the child
};

// What the child last reported in its progress file.
struct ChildProgress {
  double fraction = 0;  // in [0, 1]
  std::string phase;    // "quantize layer 9/28"
};

// The parent's reading of a finished child: its wait status and its result file.
struct JobExit {
  bool succeeded = false;          // exited 0 with a valid result
  std::vector<MetricRow> metrics;  // when succeeded
  std::string provenance_json;     // when succeeded
  std::string failure;             // when not: the reason the coordinator stores
  bool retryable = true;           // when not: false for bad input (exit code 2)
};

// Pure: `text` as valid UTF-8 without NUL bytes (each invalid byte and NUL becomes U+FFFD).
std::string ValidUtf8Text(std::string_view text);

// Pure: `wait_status` as waitpid returns it, `result_json` the result file's text ("" if none).
// A metric whose value is not a number (null: NaN or an infinity) fails the job, not retryably,
// naming the metric.
JobExit InterpretJobExit(int wait_status, const std::string& result_json);

// OUT_OF_RANGE naming the first metric whose value is NaN or infinite ("ppl is inf: the
// quantized model diverges"); OK when all are finite.
Status CheckFiniteMetrics(const std::vector<MetricRow>& metrics);

// One running child. Not thread-safe; the destructor kills and reaps a child still running.
class JobProcess {
 public:
  // Writes the spec into `scratch` (which must exist), removes a stale result and progress of
  // the same job, and starts `options.self_exe ... run-job ...` with its standard output and
  // error in a fresh log file. The child is killed when this
  // process dies (PR_SET_PDEATHSIG). INTERNAL when no process can be started.
  static StatusOr<std::unique_ptr<JobProcess>> Start(const JobProcessOptions& options,
                                                     const std::string& scratch, int64_t job_id,
                                                     const std::string& spec_json);
  ~JobProcess();
  JobProcess(const JobProcess&) = delete;
  JobProcess& operator=(const JobProcess&) = delete;

  // Reaps the child when it has exited, without waiting; true from then on.
  bool Exited();
  ChildProgress Progress() const;
  void Terminate();  // SIGTERM (ignored once the child is reaped)
  void Kill();       // SIGKILL (ignored once the child is reaped)
  // REQUIRES: Exited(). waitpid's status.
  int wait_status() const { return wait_status_; }
  // The result file's text; "" when the child wrote none.
  std::string ResultJson() const;
  // The end of the child's output: its last `max_bytes` from the start of a line (or of a
  // character), after a line saying how many bytes were left out; valid UTF-8 (invalid bytes
  // and NULs read as U+FFFD). "" when it wrote nothing.
  std::string LogTail(size_t max_bytes = kJobLogTailBytes) const;

 private:
  JobProcess(pid_t pid, std::string spec_path);

  pid_t pid_;
  std::string spec_path_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// A fresh private scratch folder for job files: <temp>/bitsweep-worker-XXXXXX made by mkdtemp
// (mode 0700, a name nobody can take or point elsewhere first). INTERNAL when none can be made.
StatusOr<std::string> MakeScratchDir();

// The child side (`bitsweep-worker run-job`): runs the JobSpec JSON file at `spec_path` (under
// tensor parallelism as its ranks, model/tp_run.h, on `device`: cpu over Gloo, cuda one GPU
// per rank over NCCL), writes the result and progress files, and returns the exit code above.
// `max_memory_bytes` as RunnerConfig's. A spec naming a path outside `roots`
// (common/path_roots.h) fails as bad input before any file of it is opened.
struct ChildOptions {
  std::string artifact_root;
  std::string data_dir;
  std::string device = "cpu";
  int64_t max_memory_bytes = 0;
  PathRoots roots;
};
int RunJobChild(const std::string& spec_path, const std::string& result_path,
                const std::string& progress_path, const ChildOptions& options);

}  // namespace bitsweep::worker
