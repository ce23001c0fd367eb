// Faults on the real system: a worker killed with SIGKILL mid-job, the coordinator killed and
// restarted mid-sweep, PostgreSQL restarted: the sweep still finishes with every result exactly
// once. (Fencing of a worker whose lease was taken away is pinned in tests/server.)
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "store/local_postgres.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;
using Clock = std::chrono::steady_clock;

int Cli(const std::string& args, const std::string& out) {
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  const int s = std::system((bin + " " + args + " > " + out + " 2>> " + out + ".err").c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

}  // namespace

TEST_CASE(
    "A sweep survives a killed worker, a coordinator restart and a PostgreSQL restart "
    "with every result exactly once",
    "[e2e][pg][grpc][fault][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_faults");
  const std::string bin = bitsweep::testing::BinaryDir();
  REQUIRE(Cli("make-tiny-model --out " + dir + "/model --seed 9", dir + "/make") == 0);
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The cat number " + std::to_string(i) + " sat on the mat.\n";
  WriteFile(dir + "/calib.txt", text);
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"The cat number one sat on the\", \"choices\": [\"mat\", \"dog\"], "
            "\"gold\": 0}\n");
  WriteFile(dir + "/sweep.yaml",
            "name: faults\nmax_attempts: 5\n"
            "models: [" +
                dir +
                "/model]\n"
                "methods:\n  - {method: [rtn, gptq, awq], wbits: [4], group: [16]}\n"
                "tasks: [{task: wikitext2, limit: 2}, " +
                dir +
                "/facts.jsonl]\n"
                "calibration: {source: " +
                dir +
                "/calib.txt, nsamples: 4, "
                "seqlen: 32}\neval: {seqlen: 64}\n");

  bitsweep::store::LocalPostgresOptions po;
  po.data_dir = dir + "/pg";
  po.fsync = false;
  auto pg = bitsweep::store::LocalPostgres::Start(po);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  auto db = (*pg)->CreateDatabase("faults");
  REQUIRE(db.ok());

  const std::string port = std::to_string(20000 + getpid() % 20000);
  const std::string addr = "127.0.0.1:" + port;
  const std::vector<std::string> coordinator = {bin + "/server/bitsweep-coordinator",
                                                "--listen",
                                                addr,
                                                "--db",
                                                *db,
                                                "--metrics-listen",
                                                "",
                                                "--http-listen",
                                                "",
                                                "--lease-ttl",
                                                "3"};
  auto worker = [&](int i) {
    return bitsweep::testing::Spawn(
        {bin + "/worker/bitsweep-worker", "--coordinator", addr, "--name", "w" + std::to_string(i),
         "--artifacts", dir + "/artifacts", "--data-dir", dir + "/data", "--poll-seconds", "0.2",
         "--threads", "1"},
        dir + "/worker-" + std::to_string(i) + ".log");
  };
  pid_t coord = bitsweep::testing::Spawn(coordinator, dir + "/coordinator.log");
  std::vector<pid_t> workers = {worker(0), worker(1)};

  REQUIRE(Cli("submit " + dir + "/sweep.yaml --coordinator " + addr, dir + "/submit") == 0);
  const std::string submitted = Slurp(dir + "/submit");
  INFO(submitted);
  REQUIRE(submitted.rfind("sweep 1 ", 0) == 0);

  // 1. SIGKILL a worker while it holds a job: its lease expires and the job runs elsewhere.
  REQUIRE(bitsweep::testing::WaitForText(dir + "/worker-0.log", "leased job", 60));
  bitsweep::testing::Signal(workers[0], SIGKILL);
  workers[0] = worker(2);
  // 2. Kill the coordinator mid-sweep and start it again: it continues from the database.
  REQUIRE(bitsweep::testing::WaitForText(dir + "/worker-1.log", "succeeded", 120));
  bitsweep::testing::Signal(coord, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  coord = bitsweep::testing::Spawn(coordinator, dir + "/coordinator.log");
  // 3. Restart PostgreSQL under the running system.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  REQUIRE((*pg)->Restart().ok());

  // The sweep finishes (watch rides out the restarts), every job succeeded, results once each.
  REQUIRE(Cli("watch 1 --coordinator " + addr, dir + "/watch") == 0);
  REQUIRE(Cli("results 1 --format json --coordinator " + addr, dir + "/results") == 0);
  auto rows = nlohmann::json::parse(Slurp(dir + "/results"));
  std::set<std::string> jobs;
  std::set<std::pair<std::string, std::string>> cells;
  for (const auto& r : rows) {
    jobs.insert(r["job_key"].get<std::string>());
    CHECK(cells.insert({r["job_key"].get<std::string>(), r["metric"].get<std::string>()}).second);
  }
  CHECK(jobs.size() == 8);              // (fp, rtn, gptq, awq) x 2 tasks
  CHECK(rows.size() == 4 * 1 + 4 * 2);  // ppl; acc + acc_norm
  REQUIRE(Cli("status 1 --coordinator " + addr, dir + "/status") == 0);
  const std::string status = Slurp(dir + "/status");
  INFO(status);
  CHECK(status.find("FAILED") == std::string::npos);
  CHECK(status.find("PENDING") == std::string::npos);

  for (pid_t w : workers) bitsweep::testing::Signal(w, SIGTERM);
  bitsweep::testing::Signal(coord, SIGTERM);
  // No job process outlives its worker (they die with their parent).
  CHECK(std::system(("pgrep -f '[r]un-job --spec " + fs::temp_directory_path().string() +
                     "/bitsweep-worker' > /dev/null")
                        .c_str()) != 0);
}
