#include "worker/job_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/diverged.h"
#include "common/job_spec.h"
#include "common/path_roots.h"
#include "common/process.h"
#include "common/utf8.h"
#include "model/tp_run.h"

namespace bitsweep::worker {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kResultSuffix[] = ".result";
constexpr char kProgressSuffix[] = ".progress";
constexpr char kLogSuffix[] = ".log";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Readers never see a half-written file: write a sibling, then rename it over the target.
void ReplaceFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::ofstream(tmp, std::ios::binary) << text;
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

bool ValidResult(const json& r) {
  return r.is_object() && r.contains("metrics") && r["metrics"].is_array() &&
         r.contains("provenance");
}

// One metric of a result file. Every key is checked before it is read: `m["key"]` on a const
// object without the key is undefined behaviour in nlohmann::json, not an exception. A null
// value (nlohmann writes NaN and infinities as null) is a diverged metric: a deterministic
// failure, named (OUT_OF_RANGE); any other malformed metric is INTERNAL. A missing or null stderr reads as 0 (unknown).
StatusOr<MetricRow> ReadMetric(const json& m) {
  if (!m.is_object() || !m.contains("name") || !m["name"].is_string()) {
    return absl::InternalError("a metric without a name");
  }
  MetricRow row;
  row.name = m["name"].get<std::string>();
  if (m.contains("value") && m["value"].is_null()) {
    return absl::OutOfRangeError(DivergedReasonUnknown(row.name));
  }
  if (!m.contains("value") || !m["value"].is_number()) {
    return absl::InternalError(absl::StrCat("metric ", row.name, " has no numeric value"));
  }
  row.value = m["value"].get<double>();
  if (m.contains("stderr") && m["stderr"].is_number()) row.stderr_ = m["stderr"].get<double>();
  if (m.contains("n") && m["n"].is_number_integer()) row.n = m["n"].get<int64_t>();
  RETURN_IF_ERROR(CheckFiniteMetrics({row}));
  return row;
}

}  // namespace

Status CheckFiniteMetrics(const std::vector<MetricRow>& metrics) {
  for (const MetricRow& m : metrics) {
    if (!std::isfinite(m.value)) return absl::OutOfRangeError(DivergedReason(m.name, m.value));
  }
  return absl::OkStatus();
}

JobExit InterpretJobExit(int wait_status, const std::string& result_json) {
  const json r = json::parse(result_json, nullptr, false);
  JobExit out;
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == kJobExitOk && ValidResult(r)) {
    Status bad;
    for (const auto& m : r["metrics"]) {
      StatusOr<MetricRow> row = ReadMetric(m);
      if (!row.ok()) {
        bad = row.status();
        break;
      }
      out.metrics.push_back(*std::move(row));
    }
    if (bad.ok()) {
      out.provenance_json = r["provenance"].dump();
      out.succeeded = true;
      return out;
    }
    out.metrics.clear();
    if (bad.code() == absl::StatusCode::kOutOfRange) {  // diverged: no attempt does better
      out.failure = std::string(bad.message());
      out.retryable = false;
      return out;
    }
    // Otherwise a malformed metric: as any other invalid result.
  }
  if (WIFSIGNALED(wait_status)) {
    const int signal = WTERMSIG(wait_status);
    out.failure = absl::StrCat("job process killed by signal ", signal,
                               signal == SIGKILL ? " (out of memory?)" : "");
    out.retryable = true;
    return out;
  }
  const int code = WEXITSTATUS(wait_status);
  out.failure =
      r.is_object() && r.contains("error") && r["error"].is_string()
          ? r["error"].get<std::string>()
          : absl::StrCat("job process exited with status ", code, " without a valid result");
  out.retryable = code != kJobExitBadInput;
  return out;
}

StatusOr<std::unique_ptr<JobProcess>> JobProcess::Start(const JobProcessOptions& options,
                                                        const std::string& scratch, int64_t job_id,
                                                        const std::string& spec_json) {
  const std::string spec_path = absl::StrCat(scratch, "/job-", job_id, ".json");
  const std::string result_path = spec_path + kResultSuffix;
  const std::string progress_path = spec_path + kProgressSuffix;
  std::ofstream(spec_path, std::ios::binary) << spec_json;
  std::error_code ec;
  fs::remove(result_path, ec);
  fs::remove(progress_path, ec);
  // Everything the child needs is built before fork: between fork and exec it only calls
  // async-signal-safe functions.
  const std::string threads = std::to_string(options.threads);
  const std::string max_memory = std::to_string(options.max_memory_bytes);
  std::vector<std::string> args = {"bitsweep-worker", "--threads",  threads,
                                   "run-job",         "--spec",     spec_path,
                                   "--result",        result_path,  "--progress",
                                   progress_path,     "--artifacts", options.artifact_root,
                                   "--data-dir",      options.data_dir, "--device", options.device,
                                   "--max-memory-bytes", max_memory};
  for (std::string& flag : RootFlags(options.roots)) args.push_back(std::move(flag));
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  // The worker's environment, with CUDA_VISIBLE_DEVICES naming exactly the job's GPUs.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "CUDA_VISIBLE_DEVICES=", 21) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back("CUDA_VISIBLE_DEVICES=" + options.cuda_visible_devices);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  // The child's standard output and error (and those of the ranks it starts) go to the log.
  const std::string log_path = spec_path + kLogSuffix;
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // Handlers dropped before exec (a SIGTERM that Terminate() sends before exec ends the child
  // instead of running the worker's, or a test framework's, handler in the copy), and a worker
  // killed mid-job leaves no stray job process.
  SpawnOptions spawn;
  spawn.parent_death_signal = SIGKILL;
  const pid_t pid = ForkForExec(spawn);
  if (pid == 0) {
    if (log_fd >= 0) {  // dup2 clears close-on-exec on the copies
      dup2(log_fd, STDOUT_FILENO);
      dup2(log_fd, STDERR_FILENO);
    }
    execve(options.self_exe.c_str(), const_cast<char* const*>(argv.data()), envp.data());
    _exit(kJobExitNotExecuted);
  }
  const int fork_errno = errno;
  if (log_fd >= 0) ::close(log_fd);
  if (pid < 0) {
    return absl::InternalError(
        absl::StrCat("cannot start a job process: fork: errno ", fork_errno));
  }
  return std::unique_ptr<JobProcess>(new JobProcess(pid, spec_path));
}

JobProcess::JobProcess(pid_t pid, std::string spec_path)
    : pid_(pid), spec_path_(std::move(spec_path)) {}

JobProcess::~JobProcess() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, &wait_status_, 0);
}

bool JobProcess::Exited() {
  if (!reaped_ && waitpid(pid_, &wait_status_, WNOHANG) == pid_) reaped_ = true;
  return reaped_;
}

ChildProgress JobProcess::Progress() const {
  std::istringstream in(Slurp(spec_path_ + kProgressSuffix));
  ChildProgress progress;
  in >> progress.fraction;
  std::getline(in >> std::ws, progress.phase);
  return progress;
}

void JobProcess::Terminate() {
  if (!reaped_) kill(pid_, SIGTERM);
}

void JobProcess::Kill() {
  if (!reaped_) kill(pid_, SIGKILL);
}

std::string JobProcess::ResultJson() const { return Slurp(spec_path_ + kResultSuffix); }

std::string ValidUtf8Text(std::string_view text) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  while (!text.empty()) {
    const size_t bad = FirstInvalidUtf8(text);
    for (char c : text.substr(0, bad)) {
      if (c == '\0') {
        out += kReplacement;
      } else {
        out += c;
      }
    }
    if (bad >= text.size()) break;
    out += kReplacement;
    text.remove_prefix(bad + 1);
  }
  return out;
}

std::string JobProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(spec_path_ + kLogSuffix, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  if (size <= 0) return "";
  const std::streamoff from =
      size > static_cast<std::streamoff>(max_bytes) ? size - static_cast<std::streamoff>(max_bytes)
                                                    : 0;
  in.seekg(from);
  std::string tail(static_cast<size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  tail.resize(static_cast<size_t>(in.gcount()));
  if (from == 0) return ValidUtf8Text(tail);
  // Cut: start at the next line when there is one, else at the next character.
  size_t start = tail.find('\n');
  start = start == std::string::npos ? 0 : start + 1;
  while (start < tail.size() && (static_cast<unsigned char>(tail[start]) & 0xC0) == 0x80) ++start;
  return absl::StrCat("... (", from + static_cast<std::streamoff>(start),
                      " earlier bytes of the job's output not kept)\n",
                      ValidUtf8Text(std::string_view(tail).substr(start)));
}

StatusOr<std::string> MakeScratchDir() {
  std::error_code ec;
  const fs::path tmp = fs::temp_directory_path(ec);
  std::string pattern = ((ec ? fs::path("/tmp") : tmp) / "bitsweep-worker-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot make a scratch directory '", pattern,
                                            "': ", std::strerror(errno)));
  }
  return pattern;
}

int RunJobChild(const std::string& spec_path, const std::string& result_path,
                const std::string& progress_path, const ChildOptions& options) {
  auto fail = [&](const Status& s) {
    // In the job's log too (bitsweep logs), where the coordinator's reason may be cut short.
    std::fprintf(stderr, "bitsweep-worker run-job: the job failed: %s\n",
                 std::string(s.message()).c_str());
    ReplaceFile(
        result_path,
        json{{"error", std::string(s.message())}, {"code", static_cast<int>(s.code())}}.dump());
    return s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound
               ? kJobExitBadInput
               : kJobExitFailed;
  };
  auto spec = JobSpecFromJson(Slurp(spec_path));
  if (!spec.ok()) return fail(spec.status());
  // Before anything opens them: a path outside the roots is refused, revealing nothing of it.
  if (Status confined = CheckJobSpecPaths(*spec, options.roots); !confined.ok()) {
    return fail(confined);
  }
  // A job with tp = N runs as N rank processes of this command (model/tp_run.h): this process
  // launches them and reports a failed rank; rank 0 writes the result and the progress.
  auto tp = model::StartTensorParallel(std::max(1, spec->resources.tp), options.device);
  if (!tp.ok()) return fail(tp.status());
  if (tp->launched) {
    if (tp->rc != 0) fail(absl::InternalError(tp->failure));
    return tp->rc;
  }
  const bool leader = tp->rank == 0;
  RunnerConfig config{options.artifact_root, options.data_dir, tp->tp, options.max_memory_bytes,
                      tp->device};
  auto progress = [&](double f, const std::string& phase) {
    if (!leader) return;
    std::ostringstream line;
    line << f << "\t" << phase;
    ReplaceFile(progress_path, line.str());
  };
  StatusOr<JobOutcome> r = absl::UnknownError("unset");
  try {
    r = RunJob(*spec, config, progress);
  } catch (const std::exception& e) {
    r = absl::InternalError(e.what());
  }
  if (!r.ok()) {
    // Rank 0 reports; the launcher names this rank when rank 0 cannot.
    if (!leader) return kJobExitFailed;
    return fail(r.status());
  }
  if (!leader) return kJobExitOk;
  // Said here, where inf and nan are still told apart (JSON has neither: nlohmann writes null).
  if (Status finite = CheckFiniteMetrics(r->metrics); !finite.ok()) {
    fail(finite);
    return kJobExitBadInput;
  }
  json metrics = json::array();
  for (const auto& m : r->metrics) {
    metrics.push_back({{"name", m.name}, {"value", m.value}, {"stderr", m.stderr_}, {"n", m.n}});
  }
  ReplaceFile(result_path,
              json{{"metrics", metrics}, {"provenance", json::parse(r->provenance_json)}}.dump());
  return kJobExitOk;
}

}  // namespace bitsweep::worker
