// The job process protocol: the parent's reading of a finished child (pure), and real child
// processes started from a shell script that stands in for `bitsweep-worker run-job`.
#include "worker/job_process.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <cmath>
#include <limits>

#include "common/job_spec.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace bitsweep::worker {
namespace {

using testing::Slurp;
using testing::WriteFile;

int Exited(int code) { return W_EXITCODE(code, 0); }
int Signaled(int signal) { return W_EXITCODE(0, signal); }

constexpr char kResult[] =
    R"({"metrics": [{"name": "ppl", "value": 12.5, "stderr": 0.25, "n": 40}],)"
    R"( "provenance": {"seed": 3}})";

TEST_CASE("a child that exits 0 with metrics and provenance succeeded") {
  const JobExit exit = InterpretJobExit(Exited(0), kResult);
  REQUIRE(exit.succeeded);
  REQUIRE(exit.metrics.size() == 1);
  CHECK(exit.metrics[0].name == "ppl");
  CHECK(exit.metrics[0].value == 12.5);
  CHECK(exit.metrics[0].stderr_ == 0.25);
  CHECK(exit.metrics[0].n == 40);
  CHECK(exit.provenance_json == R"({"seed":3})");
}

TEST_CASE("a child's failure is its error, retried unless the input was bad") {
  const JobExit bad = InterpretJobExit(Exited(kJobExitBadInput),
                                       R"({"error": "quant.wbits: 7 is not valid", "code": 3})");
  CHECK_FALSE(bad.succeeded);
  CHECK(bad.failure == "quant.wbits: 7 is not valid");
  CHECK_FALSE(bad.retryable);

  const JobExit failed = InterpretJobExit(Exited(kJobExitFailed), R"({"error": "disk full"})");
  CHECK(failed.failure == "disk full");
  CHECK(failed.retryable);

  const JobExit silent = InterpretJobExit(Exited(0), "");
  CHECK_FALSE(silent.succeeded);
  CHECK(silent.failure == "job process exited with status 0 without a valid result");
  CHECK(silent.retryable);

  const JobExit malformed =
      InterpretJobExit(Exited(0), R"({"metrics": [{"name": 1}], "provenance": {}})");
  CHECK_FALSE(malformed.succeeded);
  CHECK(malformed.failure == "job process exited with status 0 without a valid result");
}

TEST_CASE("a non-finite metric is a failure for good that names the metric and says diverged") {
  CHECK(CheckFiniteMetrics({{"ppl", 12.5, 0, 1}, {"acc", 0.5, 0.01, 10}}).ok());
  const Status inf =
      CheckFiniteMetrics({{"acc", 0.5, 0, 1}, {"ppl", std::numeric_limits<double>::infinity()}});
  CHECK(inf.message() == "ppl is inf: the quantized model diverges");
  CHECK(CheckFiniteMetrics({{"acc", std::nan("")}}).message() ==
        "acc is nan: the quantized model diverges");
  CHECK(CheckFiniteMetrics({{"nll", -std::numeric_limits<double>::infinity()}}).message() ==
        "nll is -inf: the quantized model diverges");

  // The parent reads what nlohmann::json writes for them (null) the same way.
  const JobExit exit = InterpretJobExit(
      Exited(0), R"({"metrics": [{"name": "ppl", "value": null, "stderr": 0, "n": 4}],)"
                 R"( "provenance": {}})");
  CHECK_FALSE(exit.succeeded);
  CHECK_FALSE(exit.retryable);
  CHECK(exit.failure == "ppl is not a finite number: the quantized model diverges");
  // As does a child that said so itself (exit code 2).
  const JobExit said = InterpretJobExit(
      Exited(kJobExitBadInput), R"({"error": "ppl is inf: the quantized model diverges"})");
  CHECK_FALSE(said.retryable);
  CHECK(said.failure == "ppl is inf: the quantized model diverges");
}

TEST_CASE("a result file of any shape is read without crashing: what is not a result fails") {
  const char* bad[] = {"",
                       "{",
                       "[]",
                       "null",
                       R"({"metrics": {}, "provenance": {}})",
                       R"({"metrics": [3], "provenance": {}})",
                       R"({"metrics": [{"value": 1}], "provenance": {}})",
                       R"({"metrics": [{"name": 5, "value": 1}], "provenance": {}})",
                       R"({"metrics": [{"name": "acc", "value": "0.5"}], "provenance": {}})",
                       R"({"metrics": [], "error": 3})"};
  for (const char* text : bad) {
    INFO(text);
    const JobExit exit = InterpretJobExit(Exited(0), text);
    CHECK_FALSE(exit.succeeded);
    CHECK_FALSE(exit.failure.empty());
  }
  // stderr and n are optional (a missing stderr is unknown: 0).
  const JobExit bare =
      InterpretJobExit(Exited(0), R"({"metrics": [{"name": "acc", "value": 0.5}], "provenance": 1})");
  REQUIRE(bare.succeeded);
  CHECK(bare.metrics[0].stderr_ == 0);
  CHECK(bare.metrics[0].n == 0);
}

TEST_CASE("a child killed by a signal failed retryably, whatever its result file says") {
  const JobExit killed = InterpretJobExit(Signaled(SIGKILL), kResult);
  CHECK_FALSE(killed.succeeded);
  CHECK(killed.failure == "job process killed by signal 9 (out of memory?)");
  CHECK(killed.retryable);
  CHECK(InterpretJobExit(Signaled(SIGTERM), "").failure == "job process killed by signal 15");
}

// A stand-in for `bitsweep-worker run-job` that records its arguments and runs `body`
// ($5 is the spec, $7 the result file, $9 the progress file).
std::string FakeWorkerBinary(const std::string& dir, const std::string& body) {
  const std::string path = dir + "/fake-worker";
  WriteFile(path, "#!/bin/sh\necho \"$@\" > \"" + dir + "/argv\"\n" + body + "\n");
  chmod(path.c_str(), 0755);
  return path;
}

bool WaitForExit(JobProcess& process) {
  return testing::WaitUntil([&] { return process.Exited(); }, std::chrono::seconds(20),
                            std::chrono::milliseconds(10));
}

TEST_CASE("a job process gets the spec and the protocol's arguments, and its files are read back",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_files");
  JobProcessOptions options;
  options.self_exe =
      FakeWorkerBinary(dir, "printf '0.5\\tquantize layer 1/2' > \"$9\"\ncp \"$5\" \"$7\"\nexit 0");
  options.threads = 3;
  options.artifact_root = dir + "/artifacts";
  options.data_dir = dir + "/data";
  WriteFile(dir + "/job-7.json.result", "stale");  // a previous attempt's leftover

  auto process = JobProcess::Start(options, dir, 7, kResult);
  REQUIRE(process.ok());
  REQUIRE(WaitForExit(**process));
  CHECK(WIFEXITED((*process)->wait_status()));
  CHECK(WEXITSTATUS((*process)->wait_status()) == 0);
  CHECK(Slurp(dir + "/argv") == "--threads 3 run-job --spec " + dir + "/job-7.json --result " +
                                    dir + "/job-7.json.result --progress " + dir +
                                    "/job-7.json.progress --artifacts " + dir +
                                    "/artifacts --data-dir " + dir +
                                    "/data --device cpu --max-memory-bytes 0\n");
  CHECK((*process)->ResultJson() == kResult);  // the script copied the spec there
  const ChildProgress progress = (*process)->Progress();
  CHECK(progress.fraction == 0.5);
  CHECK(progress.phase == "quantize layer 1/2");
}

TEST_CASE("a job process sees exactly the GPUs of its job in CUDA_VISIBLE_DEVICES, and none on "
          "the CPU, whatever the worker's own",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_gpus");
  setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3", 1);  // the worker's own list
  JobProcessOptions options;
  options.self_exe = FakeWorkerBinary(
      dir, "printf '%s|%s' \"${CUDA_VISIBLE_DEVICES-unset}\" \"$HOME\" > \"$7\"\nexit 0");
  options.device = "cuda";
  options.cuda_visible_devices = "2,3";
  options.max_memory_bytes = int64_t{40} << 30;
  auto gpu = JobProcess::Start(options, dir, 11, "{}");
  REQUIRE(gpu.ok());
  REQUIRE(WaitForExit(**gpu));
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  CHECK((*gpu)->ResultJson() == "2,3|" + home);  // the rest of the environment is kept
  CHECK(Slurp(dir + "/argv").find("--device cuda --max-memory-bytes 42949672960") !=
        std::string::npos);

  options.device = "cpu";
  options.cuda_visible_devices = "";
  auto cpu = JobProcess::Start(options, dir, 12, "{}");
  REQUIRE(cpu.ok());
  REQUIRE(WaitForExit(**cpu));
  CHECK((*cpu)->ResultJson() == "|" + home);  // set, and empty: no GPU at all
  unsetenv("CUDA_VISIBLE_DEVICES");
}

TEST_CASE("a job process's standard output and error are its log, whose end LogTail reads as "
          "valid UTF-8",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_log");
  JobProcessOptions options;
  options.self_exe = FakeWorkerBinary(
      dir,
      "echo 'loading the model'\necho 'it went wrong' >&2\nprintf 'bad byte \\377\\n'\nexit 1");
  auto process = JobProcess::Start(options, dir, 5, "{}");
  REQUIRE(process.ok());
  REQUIRE(WaitForExit(**process));
  CHECK((*process)->LogTail() ==
        "loading the model\nit went wrong\nbad byte \xEF\xBF\xBD\n");
  // Longer than asked: the end, from a line start, after how much was left out.
  CHECK((*process)->LogTail(20) ==
        "... (32 earlier bytes of the job's output not kept)\nbad byte \xEF\xBF\xBD\n");
  CHECK(ValidUtf8Text(std::string("a\0b", 3)) == "a\xEF\xBF\xBD" "b");

  // A child that prints nothing has an empty log, also when a previous attempt's was not.
  options.self_exe = FakeWorkerBinary(dir, "exit 0");
  auto quiet = JobProcess::Start(options, dir, 5, "{}");
  REQUIRE(quiet.ok());
  REQUIRE(WaitForExit(**quiet));
  CHECK((*quiet)->LogTail().empty());
}

TEST_CASE("a job process is given the worker's path roots as --model-root and --data-root",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_roots");
  JobProcessOptions options;
  options.self_exe = FakeWorkerBinary(dir, "exit 0");
  options.roots.model = {"/models"};
  options.roots.data = {"/data/a", "/data/b"};
  auto process = JobProcess::Start(options, dir, 9, "{}");
  REQUIRE(process.ok());
  REQUIRE(WaitForExit(**process));
  const std::string argv = Slurp(dir + "/argv");
  const std::string tail = " --model-root /models --data-root /data/a --data-root /data/b\n";
  REQUIRE(argv.size() > tail.size());
  CHECK(argv.substr(argv.size() - tail.size()) == tail);
}

TEST_CASE("a job naming a model, task or calibration file outside the roots fails for good before "
          "anything is opened, in the same words whether the path exists or not",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_child_roots");
  std::filesystem::create_directories(dir + "/models");
  std::filesystem::create_directories(dir + "/data");
  PathRoots roots;
  roots.model = {dir + "/models"};
  roots.data = {dir + "/data"};
  auto run = [&](const std::string& model, const std::string& task) {
    JobSpec spec;
    spec.model = model;
    spec.eval.task = task;
    WriteFile(dir + "/job.json", JobSpecToJson(spec));
    std::filesystem::remove(dir + "/job.json.result");
    ChildOptions child;
    child.artifact_root = dir + "/artifacts";
    child.data_dir = dir + "/data";
    child.roots = roots;
    const int rc = RunJobChild(dir + "/job.json", dir + "/job.json.result",
                               dir + "/job.json.progress", child);
    return std::make_pair(rc, Slurp(dir + "/job.json.result"));
  };
  for (const std::string model : {"/etc", "/etc-nope"}) {
    INFO(model);
    const auto [rc, result] = run(model, "wikitext2");
    CHECK(rc == kJobExitBadInput);
    CHECK(result.find("model: '" + model +
                      "' is outside the --model-root folders this server allows") !=
          std::string::npos);
  }
  const auto [rc, result] = run(dir + "/models/m", "/etc/x.jsonl");
  CHECK(rc == kJobExitBadInput);
  CHECK(result.find("task: '/etc/x.jsonl' is outside the --data-root folders") !=
        std::string::npos);
}

TEST_CASE("each scratch folder is made by mkdtemp: private, new and unguessable each time",
          "[worker]") {
  auto a = MakeScratchDir();
  auto b = MakeScratchDir();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
  for (const std::string& dir : {*a, *b}) {
    INFO(dir);
    struct stat st {};
    REQUIRE(::stat(dir.c_str(), &st) == 0);
    CHECK(S_ISDIR(st.st_mode));
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(std::filesystem::path(dir).filename().string().rfind("bitsweep-worker-", 0) == 0);
    // Not the process id: a name another user could have made (or linked) beforehand.
    CHECK(std::filesystem::path(dir).filename().string() !=
          "bitsweep-worker-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
  }
}

TEST_CASE("a job process that writes nothing has no result and no progress", "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_silent");
  WriteFile(dir + "/job-8.json.result", "stale");
  WriteFile(dir + "/job-8.json.progress", "0.9\tstale");
  JobProcessOptions options;
  options.self_exe = FakeWorkerBinary(dir, "exit 1");
  auto process = JobProcess::Start(options, dir, 8, "{}");
  REQUIRE(process.ok());
  REQUIRE(WaitForExit(**process));
  CHECK(WEXITSTATUS((*process)->wait_status()) == 1);
  CHECK((*process)->ResultJson().empty());
  CHECK((*process)->Progress().fraction == 0);
  CHECK((*process)->Progress().phase.empty());
}

TEST_CASE("Terminate stops a running job process, and a binary that cannot run exits 127",
          "[worker]") {
  const std::string dir = testing::ScratchDir("job_process_signals");
  JobProcessOptions options;
  options.self_exe = FakeWorkerBinary(dir, "exec sleep 60");
  auto process = JobProcess::Start(options, dir, 9, "{}");
  REQUIRE(process.ok());
  CHECK_FALSE((*process)->Exited());
  (*process)->Terminate();
  REQUIRE(WaitForExit(**process));
  CHECK(WIFSIGNALED((*process)->wait_status()));
  CHECK(WTERMSIG((*process)->wait_status()) == SIGTERM);

  options.self_exe = dir + "/no-such-binary";
  auto missing = JobProcess::Start(options, dir, 10, "{}");
  REQUIRE(missing.ok());
  REQUIRE(WaitForExit(**missing));
  CHECK(WEXITSTATUS((*missing)->wait_status()) == kJobExitNotExecuted);
}

}  // namespace
}  // namespace bitsweep::worker
