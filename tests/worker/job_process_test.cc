// The job process protocol: the parent's reading of a finished child (pure), and real child
// processes started from a shell script that stands in for `bitsweep-worker run-job`.
#include "worker/job_process.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <chrono>

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
                                    "/artifacts --data-dir " + dir + "/data\n");
  CHECK((*process)->ResultJson() == kResult);  // the script copied the spec there
  const ChildProgress progress = (*process)->Progress();
  CHECK(progress.fraction == 0.5);
  CHECK(progress.phase == "quantize layer 1/2");
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
