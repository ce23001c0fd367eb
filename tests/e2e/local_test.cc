// End to end: `bitsweep local` runs a real private PostgreSQL, the coordinator and two workers
// over loopback gRPC on a small sweep with every method, and a second run of the same sweep
// does no new work. Its lifecycle: inputs checked before anything starts, --keep serving at the
// printed address, exit codes, and no process left behind however it ends (SIGTERM, a closed
// standard output, SIGKILL); --results and --status on a stopped state folder.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <algorithm>
#include <cstdlib>
#include <vector>
#include <sstream>

#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;

struct Run {
  int code = -1;
  std::string out, err;
};

std::string BitsweepBin() { return bitsweep::testing::BinaryDir() + "/cli/bitsweep"; }

// Runs `bitsweep args`; `pipe_to` (a shell command) reads its standard output instead of a file.
Run Bitsweep(const std::string& args, const std::string& scratch, const std::string& pipe_to = "") {
  const std::string out = scratch + "/stdout", err = scratch + "/stderr", code = scratch + "/code";
  const std::string run = BitsweepBin() + " " + args + " 2> " + err + " < /dev/null";
  const int status = std::system(
      (pipe_to.empty() ? run + " > " + out : "(" + run + "; echo $? > " + code + ") | " + pipe_to)
          .c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (!pipe_to.empty()) r.code = std::atoi(Slurp(code).c_str());
  r.out = pipe_to.empty() ? Slurp(out) : "";
  r.err = Slurp(err);
  return r;
}

// The pids `bitsweep local` printed ("PostgreSQL (pid 12)", "workers (pids 13, 14; ...").
std::vector<pid_t> PrintedPids(const std::string& text) {
  std::vector<pid_t> pids;
  static const std::regex list(R"(\(pids? ([0-9]+(, [0-9]+)*))");
  for (std::sregex_iterator it(text.begin(), text.end(), list), end; it != end; ++it) {
    std::istringstream in((*it)[1].str());
    std::string pid;
    while (std::getline(in, pid, ',')) pids.push_back(std::stoi(pid));
  }
  return pids;
}

// Whether `pid` is a live process (not a zombie).
bool Running(pid_t pid) {
  const std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// The live processes other than this one whose command line mentions `text`.
std::vector<pid_t> ProcessesNaming(const std::string& text) {
  std::vector<pid_t> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    std::string cmdline = Slurp(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (pid != getpid() && cmdline.find(text) != std::string::npos && Running(pid)) {
      found.push_back(pid);
    }
  }
  return found;
}

// Waits until none of the pids `log` printed runs and no process names `dir`; INFO lists the
// survivors otherwise.
bool NothingLeft(const std::string& log, const std::string& dir, int seconds) {
  const std::vector<pid_t> printed = PrintedPids(log);
  CHECK(printed.size() >= 3);  // PostgreSQL, the coordinator, a worker at least
  std::vector<pid_t> left;
  const bool gone = bitsweep::testing::WaitUntil(
      [&] {
        left = ProcessesNaming(dir);
        for (pid_t p : printed) {
          if (Running(p)) left.push_back(p);
        }
        return left.empty();
      },
      std::chrono::seconds(seconds), std::chrono::milliseconds(100));
  for (pid_t p : left) {
    UNSCOPED_INFO("left running: pid " << p << ": " << Slurp("/proc/" + std::to_string(p) + "/cmdline"));
  }
  return gone;
}

// A tiny model, WikiText-2-style data and dir/sweep.yaml naming them by paths relative to its
// folder (tests run in the source tree, so they resolve only against the sweep's folder); with
// `failing`, a second task whose file is not JSON fails its job.
void WriteTinySweep(const std::string& dir, bool failing) {
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 5", dir).code == 0);
  std::string text;
  for (int i = 0; i < 200; ++i) text += "The cat number " + std::to_string(i) + " sat down.\n";
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  WriteFile(dir + "/bad.jsonl", "this is not JSON\n");
  WriteFile(dir + "/sweep.yaml", std::string("name: life\nmax_attempts: 1\nmodels: [model]\n") +
                                     "tasks: [{task: wikitext2, limit: 2}" +
                                     (failing ? ", bad.jsonl" : "") + "]\neval: {seqlen: 64}\n");
}

std::string LocalArgs(const std::string& dir) {
  return " --workers 1 --threads-per-worker 1 --state-dir " + dir + "/state --data-dir " + dir +
         "/data";
}

int CountLeases(const std::string& logs) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(logs)) {
    if (e.path().filename().string().rfind("worker-", 0) != 0) continue;
    const std::string text = Slurp(e.path().string());
    for (size_t p = text.find("leased job"); p != std::string::npos;
         p = text.find("leased job", p + 1)) {
      ++n;
    }
  }
  return n;
}

}  // namespace

TEST_CASE("bitsweep local runs every method on a small sweep and a rerun does no new work",
          "[e2e][pg][grpc][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 8", dir).code == 0);
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The cat number " + std::to_string(i) + " sat on the mat.\n";
  WriteFile(dir + "/calib.txt", text);
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"The cat number one sat on the\", \"choices\": [\"mat\", \"dog\"], "
            "\"gold\": 0}\n{\"context\": \"The cat\", \"choices\": [\"number\", \"blue\"], "
            "\"gold\": 0}\n");
  WriteFile(dir + "/sweep.yaml",
            "name: e2e\n"
            "models: [" +
                dir +
                "/model]\n"
                "methods:\n"
                "  - {method: [rtn, gptq, awq], wbits: [4], group: [16]}\n"
                "  - {method: smoothquant, wbits: [8], abits: [8]}\n"
                "  - {method: billm}\n"
                "tasks: [{task: wikitext2, limit: 2}, " +
                dir +
                "/facts.jsonl]\n"
                "calibration: {source: " +
                dir +
                "/calib.txt, nsamples: 4, "
                "seqlen: 32}\n"
                "eval: {seqlen: 64}\n");
  const std::string args = "local " + dir +
                           "/sweep.yaml --workers 2 --threads-per-worker 1 "
                           "--state-dir " +
                           dir + "/state --data-dir " + dir +
                           "/data "
                           "--format json";
  Run first = Bitsweep(args, dir);
  INFO(first.err);
  REQUIRE(first.code == 0);
  auto rows = nlohmann::json::parse(first.out);
  // 6 quant configs (fp, rtn, gptq, awq, smoothquant, billm) x 2 tasks; wikitext2 gives ppl,
  // the facts task acc and acc_norm.
  std::set<std::string> jobs;
  std::map<std::string, int> metrics;
  for (const auto& r : rows) {
    jobs.insert(r["job_key"].get<std::string>());
    metrics[r["metric"].get<std::string>()]++;
    CHECK(r["provenance"].contains("worker"));
  }
  CHECK(jobs.size() == 12);
  CHECK(metrics["ppl"] == 6);
  CHECK(metrics["acc"] == 6);
  CHECK(metrics["acc_norm"] == 6);
  const int leases = CountLeases(dir + "/state/logs");
  CHECK(leases == 12);
  // Every quantized artifact was produced once (5 methods), whatever the number of tasks.
  int artifacts = 0;
  for (const auto& e : fs::directory_iterator(dir + "/state/artifacts")) {
    artifacts += e.is_directory();
  }
  CHECK(artifacts == 5);

  Run second = Bitsweep(args, dir);
  INFO(second.err);
  REQUIRE(second.code == 0);
  CHECK(nlohmann::json::parse(second.out).size() == rows.size());
  CHECK(CountLeases(dir + "/state/logs") == leases);  // answered from stored results
}

TEST_CASE(
    "A sweep asking for tensor parallelism runs its jobs as 2 ranks and stores the "
    "results of one process",
    "[e2e][pg][grpc][tp][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local_tp");
  REQUIRE(Bitsweep("make-tiny-model --out " + dir + "/model --seed 9", dir).code == 0);
  std::string text;
  for (int i = 0; i < 300; ++i) text += "A dog number " + std::to_string(i) + " ran home.\n";
  WriteFile(dir + "/calib.txt", text);
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  auto sweep = [&](const std::string& name, const std::string& resources) {
    WriteFile(dir + "/" + name + ".yaml",
              "name: " + name + "\nmodels: [" + dir + "/model]\n" +
                  "methods:\n  - {method: [rtn, awq], wbits: [4], group: [16]}\n"
                  "tasks: [{task: wikitext2, limit: 2}]\n"
                  "calibration: {source: " +
                  dir +
                  "/calib.txt, nsamples: 4, seqlen: 32}\n"
                  "eval: {seqlen: 64}\n" +
                  resources);
  };
  sweep("one", "");
  sweep("two", "resources: {devices: 2, tp: 2}\n");
  auto run = [&](const std::string& name, const std::string& extra) {
    Run r = Bitsweep("local " + dir + "/" + name + ".yaml --workers 1 --threads-per-worker 1 " +
                         "--state-dir " + dir + "/state-" + name + " --data-dir " + dir +
                         "/data --format json" + extra,
                     dir);
    INFO(r.err);
    REQUIRE(r.code == 0);
    std::map<std::string, nlohmann::json> by_job;
    for (const auto& row : nlohmann::json::parse(r.out)) {
      by_job[row["job_key"].get<std::string>()] = row;
    }
    return by_job;
  };
  const auto one = run("one", "");
  const auto two = run("two", " --devices-per-worker 2");
  REQUIRE(one.size() == 3);  // fp, rtn, awq
  REQUIRE(two.size() == one.size());
  for (const auto& [key, row] : two) {
    INFO(key);
    REQUIRE(one.count(key) == 1);  // tp is not part of the job key
    CHECK(row["provenance"]["tensor_parallel"] == 2);
    const double a = one.at(key)["value"].get<double>(), b = row["value"].get<double>();
    CHECK(std::abs(b - a) / a < 5e-7);
  }
}

TEST_CASE("bitsweep local lists every problem of a sweep's inputs and needs and starts nothing",
          "[e2e][cli]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local_invalid");
  WriteFile(dir + "/partial/config.json", "{}");  // no weights, no tokenizer.json
  WriteFile(dir + "/data/README", "no task data here\n");
  WriteFile(dir + "/sweep.yaml",
            "name: bad\nmodels: [partial, absent]\ntasks: [wikitext2, facts.jsonl]\n");
  Run r = Bitsweep("local " + dir + "/sweep.yaml" + LocalArgs(dir), dir);
  INFO(r.err);
  CHECK(r.code == 2);
  for (const std::string& problem :
       {"model " + dir + "/partial: no weights (*.safetensors)",
        "model " + dir + "/partial: no tokenizer.json", "model " + dir + "/absent: no such folder",
        "task " + dir + "/facts.jsonl: no such file",
        "task wikitext2: no data in " + dir + "/data/wikitext2"}) {
    CHECK(r.err.find(problem) != std::string::npos);
  }
  CHECK(r.err.find("5 problems (nothing was started)") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/state"));

  // A C4 folder with only the validation files evaluates C4 but cannot calibrate on it.
  Run make = Bitsweep("make-tiny-model --out " + dir + "/model --seed 3", dir);
  REQUIRE(make.code == 0);
  WriteFile(dir + "/data/c4/c4-validation.00000-of-00008.json", "{\"text\": \"a b c\"}\n");
  WriteFile(dir + "/calib.yaml",
            "name: calib\nmodels: [model]\nmethods: [{method: gptq, wbits: [4], group: [16]}]\n"
            "tasks: [c4]\ncalibration: {source: c4}\n");
  Run calib = Bitsweep("local " + dir + "/calib.yaml" + LocalArgs(dir), dir);
  INFO(calib.err);
  CHECK(calib.code == 2);
  CHECK(calib.err.find("calibration source c4: no C4 training file (c4-train.*.json) in " + dir +
                       "/data/c4") != std::string::npos);
  CHECK(calib.err.find("1 problem") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/state"));

  // Resources no local worker offers would leave the jobs pending for ever: refused up front.
  WriteFile(dir + "/big.yaml",
            "name: big\nmodels: [model]\ntasks: [{task: big.jsonl}]\n"
            "resources: {devices: 2, memory_gb: 24, tp: 2}\n");
  WriteFile(dir + "/big.jsonl", "{\"context\": \"a\", \"choices\": [\" b\", \" c\"], \"gold\": 0}\n");
  Run big = Bitsweep("local " + dir + "/big.yaml" + LocalArgs(dir), dir);
  INFO(big.err);
  CHECK(big.code == 2);
  CHECK(big.err.find("1 job needs resources devices 2, tp 2, memory_gb 24, which no local worker "
                     "offers (each offers 1 device and tp 1, memory unspecified)") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/state"));

  Run format = Bitsweep("local " + dir + "/sweep.yaml --format xml", dir);
  CHECK(format.code == 2);
  CHECK(format.err.find("--format") != std::string::npos);
  Run nothing = Bitsweep("local --state-dir " + dir + "/state", dir);
  CHECK(nothing.code == 2);
  Run no_state = Bitsweep("local --results --state-dir " + dir + "/state", dir);
  CHECK(no_state.code == 1);
  CHECK(no_state.err.find("no bitsweep local state in " + dir + "/state") != std::string::npos);
}

TEST_CASE(
    "bitsweep local --keep serves at the printed address, with exit codes scripts can trust "
    "and jobs that status -o json|wide, describe job and logs show, stops everything on "
    "SIGTERM, and --results/--status answer from the stopped state",
    "[e2e][pg][grpc][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local_keep");
  WriteTinySweep(dir, /*failing=*/true);
  const std::string log = dir + "/keep.log";
  std::vector<std::string> argv = {BitsweepBin(), "local", dir + "/sweep.yaml", "--keep",
                                   "--format", "csv"};
  std::istringstream extra(LocalArgs(dir));
  for (std::string a; extra >> a;) argv.push_back(a);
  const pid_t local = bitsweep::testing::Spawn(argv, log);
  REQUIRE(bitsweep::testing::WaitForText(log, "serving until Ctrl-C", 300));
  const std::string text = Slurp(log);
  INFO(text);
  // The failed job's error is printed, and relative paths resolved against the sweep's folder.
  CHECK(std::regex_search(text, std::regex("local: job [0-9]+ failed: .*bad\\.jsonl")));
  std::smatch address;
  REQUIRE(std::regex_search(text, address, std::regex("coordinator (127\\.0\\.0\\.1:[0-9]+) \\(e\\.g\\.")));
  const std::string at = " --coordinator " + address[1].str();

  Run status = Bitsweep("status" + at, dir);
  CHECK(status.code == 0);
  CHECK(status.out.find("sweep 1 life") != std::string::npos);
  // status -o json|wide and describe job show the failed job's worker, times and reason.
  Run listed_json = Bitsweep("status 1 -o json" + at, dir);
  REQUIRE(listed_json.code == 0);
  const auto jobs = nlohmann::json::parse(listed_json.out);
  REQUIRE(jobs.size() == 2);  // wikitext2 and bad.jsonl on the baseline
  int64_t failed_id = 0;
  for (const auto& job : jobs) {
    INFO(job.dump());
    CHECK(!job["worker"].get<std::string>().empty());
    CHECK(job["created_at"].is_number());
    CHECK(job["leased_at"].is_number());
    CHECK(job["finished_at"].is_number());
    CHECK(job["elapsed_seconds"].get<double>() >= 0);
    if (job["state"] == "FAILED") {
      failed_id = job["id"].get<int64_t>();
      CHECK(job["error"].get<std::string>().find("bad.jsonl") != std::string::npos);
      CHECK(job["attempt"] == 1);
      CHECK(job["max_attempts"] == 1);
    } else {
      CHECK(job["state"] == "SUCCEEDED");
    }
  }
  REQUIRE(failed_id > 0);
  Run wide = Bitsweep("status 1 -o wide" + at, dir);
  CHECK(wide.code == 0);
  CHECK(wide.out.rfind("ID  STATE", 0) == 0);
  CHECK(wide.out.find("REASON") != std::string::npos);
  CHECK(Bitsweep("status -o wide" + at, dir).out.find("life") != std::string::npos);
  CHECK(Bitsweep("status -o xml" + at, dir).code == 2);
  Run described = Bitsweep("describe job " + std::to_string(failed_id) + at, dir);
  INFO(described.err);
  CHECK(described.code == 0);
  for (const char* expected : {"state:", "FAILED", "attempts:", "1/1", "worker:", "finished:",
                               "elapsed:", "error:", "bad.jsonl", "SUBMIT", "LEASE", "FAIL",
                               "provenance:"}) {
    CHECK(described.out.find(expected) != std::string::npos);
  }
  Run described_json = Bitsweep("describe job " + std::to_string(failed_id) + " -o json" + at, dir);
  REQUIRE(described_json.code == 0);
  const auto description = nlohmann::json::parse(described_json.out);
  CHECK(description["job"]["id"] == std::to_string(failed_id));  // int64 is a JSON string
  CHECK(description["events"].size() >= 3);                     // SUBMIT, LEASE, FAIL
  Run unknown = Bitsweep("describe job 999999" + at, dir);
  CHECK(unknown.code == 1);
  CHECK(unknown.err.find("job 999999 does not exist") != std::string::npos);
  // logs: what the job process wrote, as its worker reported it with the Fail.
  Run logs = Bitsweep("logs " + std::to_string(failed_id) + at, dir);
  INFO(logs.err);
  CHECK(logs.code == 0);
  CHECK(logs.out.find("the job failed:") != std::string::npos);
  CHECK(logs.out.find("bad.jsonl") != std::string::npos);
  CHECK(logs.err.find("attempt 1") != std::string::npos);
  CHECK(Bitsweep("logs 999999" + at, dir).code == 1);
  CHECK(Bitsweep("watch 1" + at, dir).code == 3);     // a job failed
  CHECK(Bitsweep("results 1" + at, dir).code == 0);   // wikitext2 has its result
  WriteFile(dir + "/only-bad.yaml",
            "name: onlybad\nmax_attempts: 1\nmodels: [model]\ntasks: [bad.jsonl]\n");
  Run wait = Bitsweep("submit --wait " + dir + "/only-bad.yaml" + at, dir);
  INFO(wait.err);
  CHECK(wait.code == 3);
  CHECK(Bitsweep("results 2" + at, dir).code == 4);  // nothing succeeded

  const auto start = std::chrono::steady_clock::now();
  kill(local, SIGTERM);
  int wait_status = 0;
  waitpid(local, &wait_status, 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string stopped = Slurp(log);
  INFO(stopped);
  CHECK(seconds < 15);
  REQUIRE(WIFEXITED(wait_status));
  CHECK(WEXITSTATUS(wait_status) == 3);  // the sweep's code: a job failed
  CHECK(std::regex_search(stopped, std::regex("local: stopped 1 worker \\(pid [0-9]+\\), the "
                                              "coordinator \\(pid [0-9]+\\), PostgreSQL \\(pid "
                                              "[0-9]+\\)")));
  CHECK(NothingLeft(stopped, dir, 10));

  Run results = Bitsweep("local --results --format json" + LocalArgs(dir), dir);
  INFO(results.err);
  REQUIRE(results.code == 0);
  CHECK(results.err.find("read-only") != std::string::npos);
  const auto rows = nlohmann::json::parse(results.out);
  REQUIRE(rows.size() == 1);  // wikitext2's ppl on the baseline
  CHECK(rows[0]["spec"]["model"] == dir + "/model");
  Run listed = Bitsweep("local --status" + LocalArgs(dir), dir);
  INFO(listed.err);
  CHECK(listed.code == 0);
  CHECK(listed.out.find("sweep 2 onlybad") != std::string::npos);
  CHECK(listed.out.find("error:") != std::string::npos);
  CHECK(NothingLeft(results.err + listed.err, dir, 10));
}

TEST_CASE("bitsweep local whose standard output closes (| true, as | head) stops what it started",
          "[e2e][pg][grpc][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local_sigpipe");
  WriteTinySweep(dir, /*failing=*/false);
  Run r = Bitsweep("local " + dir + "/sweep.yaml" + LocalArgs(dir), dir, "true");
  INFO(r.err);
  CHECK(r.code == 128 + SIGPIPE);
  CHECK(r.err.find("local: standard output closed: stopping everything") != std::string::npos);
  CHECK(r.err.find("local: stopped 1 worker") != std::string::npos);
  CHECK(NothingLeft(r.err, dir, 10));
}

TEST_CASE("bitsweep local killed with SIGKILL leaves no worker, coordinator or PostgreSQL",
          "[e2e][pg][grpc][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_local_sigkill");
  const std::string log = dir + "/serve.log";
  fs::create_directories(dir + "/data");
  std::vector<std::string> argv = {BitsweepBin(), "local", "--keep"};
  std::istringstream extra(LocalArgs(dir));
  for (std::string a; extra >> a;) argv.push_back(a);
  const pid_t local = bitsweep::testing::Spawn(argv, log);
  REQUIRE(bitsweep::testing::WaitForText(log, "serving until Ctrl-C", 120));
  bitsweep::testing::Signal(local, SIGKILL);
  INFO(Slurp(log));
  CHECK(NothingLeft(Slurp(log), dir, 30));
}
