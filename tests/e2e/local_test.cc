// End to end: `bitsweep local` runs a real private PostgreSQL, the coordinator and two workers
// over loopback gRPC on a small sweep with every method, and a second run of the same sweep
// does no new work.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;

struct Run {
  int code = -1;
  std::string out, err;
};

Run Bitsweep(const std::string& args, const std::string& scratch) {
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  const std::string out = scratch + "/stdout", err = scratch + "/stderr";
  const int status =
      std::system((bin + " " + args + " > " + out + " 2> " + err + " < /dev/null").c_str());
  Run r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
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
