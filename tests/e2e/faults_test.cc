// Faults on the real system: a worker killed with SIGKILL mid-job, the coordinator killed and
// restarted mid-sweep, PostgreSQL restarted: the sweep still finishes with every result exactly
// once; a worker frozen (SIGSTOP) past its lease is fenced when it wakes up.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "store/local_postgres.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace {

namespace fs = std::filesystem;
using bitsweep::testing::Slurp;
using bitsweep::testing::WriteFile;
using bitsweep::testing::WaitUntil;

// The first child process of `parent` (the worker's job process), or 0.
pid_t ChildOf(pid_t parent) {
  FILE* p = popen(("pgrep -P " + std::to_string(parent)).c_str(), "r");
  long pid = 0;
  if (p != nullptr) {
    if (std::fscanf(p, "%ld", &pid) != 1) pid = 0;
    pclose(p);
  }
  return static_cast<pid_t>(pid);
}

// The first child process of `parent` once there is one, or 0 after `seconds`.
pid_t WaitForChild(pid_t parent, int seconds) {
  pid_t child = 0;
  WaitUntil([&] { return (child = ChildOf(parent)) > 0; }, std::chrono::seconds(seconds));
  return child;
}

// The state letter of /proc/<pid>/stat ('R', 'S', 'T' stopped, 'Z' zombie), '-' when gone.
char ProcState(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return '-';
  const auto paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ? '-' : line[paren + 2];
}

bool WaitForState(pid_t pid, const std::string& states, int seconds) {
  return WaitUntil([&] { return states.find(ProcState(pid)) != std::string::npos; },
                   std::chrono::seconds(seconds));
}

// The job id of the `nth` (0-based) "leased job N" line in a worker log, or -1.
long LeasedJob(const std::string& log, int nth) {
  const std::string key = "leased job ";
  std::size_t at = 0;
  for (int i = 0; i <= nth; ++i) {
    at = log.find(key, i == 0 ? 0 : at + 1);
    if (at == std::string::npos) return -1;
  }
  return std::stol(log.substr(at + key.size()));
}

int Cli(const std::string& args, const std::string& out) {
  const std::string bin = bitsweep::testing::BinaryDir() + "/cli/bitsweep";
  const int s = std::system((bin + " " + args + " > " + out + " 2>> " + out + ".err").c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

// A tiny model, calibration text, a WikiText-2 file and a one-question task under `dir`.
void WriteCatFixtures(const std::string& dir) {
  REQUIRE(Cli("make-tiny-model --out " + dir + "/model --seed 9", dir + "/make") == 0);
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += "The cat number " + std::to_string(i) + " sat on the mat.\n";
  WriteFile(dir + "/calib.txt", text);
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  WriteFile(dir + "/facts.jsonl",
            "{\"context\": \"The cat number one sat on the\", \"choices\": [\"mat\", \"dog\"], "
            "\"gold\": 0}\n");
}

using bitsweep::testing::StartPostgres;

// The conninfo of a new database `name` on `pg`.
std::string Database(bitsweep::store::LocalPostgres& pg, const std::string& name) {
  auto db = pg.CreateDatabase(name);
  INFO(db.status().ToString());
  REQUIRE(db.ok());
  return *db;
}

// A failed REQUIRE leaves no process behind (frozen ones included): SIGCONT, SIGKILL, reap.
struct KillAtExit {
  std::vector<pid_t*> pids;
  ~KillAtExit() {
    for (pid_t* p : pids) {
      if (*p <= 0) continue;
      ::kill(*p, SIGCONT);
      ::kill(*p, SIGKILL);
      ::waitpid(*p, nullptr, 0);
    }
  }
};

}  // namespace

TEST_CASE(
    "A sweep survives a killed worker, a coordinator restart and a PostgreSQL restart "
    "with every result exactly once",
    "[e2e][pg][grpc][fault][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_faults");
  const std::string bin = bitsweep::testing::BinaryDir();
  WriteCatFixtures(dir);
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

  auto pg = StartPostgres(dir);
  const std::string db = Database(*pg, "faults");

  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  const std::vector<std::string> coordinator = {bin + "/server/bitsweep-coordinator",
                                                "--listen",
                                                addr,
                                                "--db",
                                                db,
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
  // 2. Kill the coordinator mid-sweep and start it again (Signal reaps it, so its port is
  // closed): it continues from the database.
  REQUIRE(bitsweep::testing::WaitForText(dir + "/worker-1.log", "succeeded", 120));
  bitsweep::testing::Signal(coord, SIGKILL);
  coord = bitsweep::testing::Spawn(coordinator, dir + "/coordinator.log");
  // 3. Restart PostgreSQL under the running system: once the new coordinator serves (its
  // start-up line is in the log a second time).
  REQUIRE(WaitUntil(
      [&] {
        return bitsweep::testing::Count(Slurp(dir + "/coordinator.log"), "gRPC on ") >= 2;
      },
      std::chrono::seconds(60)));
  REQUIRE(pg->Restart().ok());

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
  // No job process of this test's workers outlives its worker (they die with their parent).
  // Matched by this test's artifact folder: other e2e tests may run workers at the same time.
  CHECK(std::system(("pgrep -f '[r]un-job --spec .* --artifacts " + dir + "/artifacts' > /dev/null")
                        .c_str()) != 0);
}

TEST_CASE(
    "A worker frozen past its lease is fenced when it wakes: its stale job process is killed, its "
    "late Complete is rejected, it keeps serving, and every result lands exactly once",
    "[e2e][pg][grpc][fault][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_fenced");
  const std::string bin = bitsweep::testing::BinaryDir();
  WriteCatFixtures(dir);
  const std::string common = "models: [" + dir +
                             "/model]\n"
                             "calibration: {source: " +
                             dir + "/calib.txt, nsamples: 4, seqlen: 32}\neval: {seqlen: 64}\n";
  WriteFile(dir + "/sweep.yaml", "name: fenced\nmax_attempts: 5\n" + common +
                                     "methods:\n  - {method: [rtn, gptq, awq], wbits: [4], "
                                     "group: [16]}\n"
                                     "tasks: [{task: wikitext2, limit: 2}, " +
                                     dir + "/facts.jsonl]\n");
  // Later sweeps: a new artifact (gptq w4 g32) and new eval settings, so none of their jobs is
  // answered from sweep 1's results.
  WriteFile(dir + "/second.yaml", "name: second\n" + common +
                                      "methods:\n  - {method: gptq, wbits: [4], group: [32]}\n"
                                      "tasks: [{task: wikitext2, limit: 1}]\n");
  WriteFile(dir + "/third.yaml", "name: third\n" + common +
                                     "methods:\n  - {method: rtn, wbits: [4], group: [16]}\n"
                                     "tasks: [{task: wikitext2, limit: 3}]\n");

  auto pg = StartPostgres(dir);
  const std::string db = Database(*pg, "fenced");
  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  pid_t coord =
      bitsweep::testing::Spawn({bin + "/server/bitsweep-coordinator", "--listen", addr, "--db", db,
                                "--metrics-listen", "", "--http-listen", "", "--lease-ttl", "3"},
                               dir + "/coordinator.log");
  auto worker = [&](const std::string& name) {
    return bitsweep::testing::Spawn(
        {bin + "/worker/bitsweep-worker", "--coordinator", addr, "--name", name, "--artifacts",
         dir + "/artifacts", "--data-dir", dir + "/data", "--poll-seconds", "0.2", "--threads",
         "1"},
        dir + "/" + name + ".log");
  };
  const std::string log0 = dir + "/w0.log", log1 = dir + "/w1.log";
  pid_t w0 = worker("w0");
  pid_t w1 = 0;
  KillAtExit kill_at_exit{{&coord, &w0, &w1}};
  REQUIRE(Cli("submit " + dir + "/sweep.yaml --coordinator " + addr, dir + "/submit") == 0);

  // 1. Freeze w0 and its job process; w1 takes the job over once the lease expires.
  REQUIRE(bitsweep::testing::WaitForText(log0, "leased job", 60));
  const pid_t child1 = WaitForChild(w0, 10);
  REQUIRE(child1 > 0);
  ::kill(child1, SIGSTOP);
  ::kill(w0, SIGSTOP);
  const long job1 = LeasedJob(bitsweep::testing::Slurp(log0), 0);
  w1 = worker("w1");
  REQUIRE(bitsweep::testing::WaitForText(log1, "job " + std::to_string(job1) + " succeeded", 120));
  // w0 wakes (its job process still frozen): the heartbeat is fenced and it kills the process.
  ::kill(w0, SIGCONT);
  REQUIRE(bitsweep::testing::WaitForText(
      log0, "stopping job " + std::to_string(job1) + ": lease lost", 30));
  CHECK(WaitForState(child1, "-", 30));  // killed and reaped by w0

  REQUIRE(Cli("watch 1 --coordinator " + addr, dir + "/watch1") == 0);

  // 2. Freeze only w0 while it runs a job of a second sweep (w1 is held back until then): its
  // job process finishes meanwhile, w1 redoes the job, and w0's late Complete is rejected.
  ::kill(w1, SIGSTOP);
  // w0 may have run more of sweep 1 once it woke: its lease of sweep 2 is the first one logged
  // from here on (sweep 1 is finished, so nothing else is leased meanwhile).
  const std::size_t sweep2_from = Slurp(log0).size();
  REQUIRE(Cli("submit " + dir + "/second.yaml --coordinator " + addr, dir + "/submit2") == 0);
  long job2 = -1;
  REQUIRE(WaitUntil([&] { return (job2 = LeasedJob(Slurp(log0).substr(sweep2_from), 0)) > 0; },
                    std::chrono::seconds(30)));
  const pid_t child2 = WaitForChild(w0, 10);
  ::kill(w0, SIGSTOP);
  ::kill(w1, SIGCONT);
  REQUIRE(child2 > 0);
  CHECK(WaitForState(child2, "Z", 120));  // finished, waiting for its frozen parent
  REQUIRE(bitsweep::testing::WaitForText(log1, "job " + std::to_string(job2) + " succeeded", 180));
  ::kill(w0, SIGCONT);
  REQUIRE(bitsweep::testing::WaitForText(
      log0, "job " + std::to_string(job2) + " complete: FAILED_PRECONDITION", 30));
  REQUIRE(Cli("watch 2 --coordinator " + addr, dir + "/watch2") == 0);

  // 3. w0 keeps serving: with w1 gone it runs a third sweep's jobs.
  bitsweep::testing::Signal(w1, SIGTERM);
  w1 = 0;
  const std::size_t before = bitsweep::testing::Slurp(log0).size();
  REQUIRE(Cli("submit " + dir + "/third.yaml --wait --coordinator " + addr, dir + "/submit3") == 0);
  CHECK(bitsweep::testing::Slurp(log0).find("succeeded", before) != std::string::npos);

  REQUIRE(Cli("results --format json --coordinator " + addr, dir + "/results") == 0);
  auto rows = nlohmann::json::parse(Slurp(dir + "/results"));
  std::set<std::string> jobs;
  std::set<std::pair<std::string, std::string>> cells;
  for (const auto& r : rows) {
    jobs.insert(r["job_key"].get<std::string>());
    CHECK(cells.insert({r["job_key"].get<std::string>(), r["metric"].get<std::string>()}).second);
  }
  CHECK(jobs.size() == 8 + 2 + 2);              // sweep 1: 4 x 2 tasks; then fp and one method each
  CHECK(rows.size() == 4 * 1 + 4 * 2 + 2 + 2);  // ppl; acc + acc_norm; ppl; ppl
  for (const std::string sweep : {"1", "2", "3"}) {
    REQUIRE(Cli("status " + sweep + " --coordinator " + addr, dir + "/status" + sweep) == 0);
    const std::string status = Slurp(dir + "/status" + sweep);
    INFO(status);
    CHECK(status.find("FAILED") == std::string::npos);
    CHECK(status.find("PENDING") == std::string::npos);
  }
  bitsweep::testing::Signal(w0, SIGTERM);
  bitsweep::testing::Signal(coord, SIGTERM);
  w0 = coord = 0;
}

namespace {

// The child processes of `parent` whose environment names tensor-parallel rank `rank`.
pid_t RankOf(pid_t parent, int rank) {
  FILE* p = popen(("pgrep -P " + std::to_string(parent)).c_str(), "r");
  if (p == nullptr) return 0;
  long pid = 0;
  pid_t found = 0;
  const std::string want = "BITSWEEP_TP_RANK=" + std::to_string(rank) + std::string(1, '\0');
  while (std::fscanf(p, "%ld", &pid) == 1) {
    if (Slurp("/proc/" + std::to_string(pid) + "/environ").find(want) != std::string::npos) {
      found = static_cast<pid_t>(pid);
    }
  }
  pclose(p);
  return found;
}

}  // namespace

TEST_CASE(
    "A tensor-parallel rank killed mid-job fails that attempt naming the rank, leaves no rank "
    "behind, and the retried job stores its result once",
    "[e2e][pg][grpc][fault][tp][slow]") {
  const std::string dir = bitsweep::testing::ScratchDir("e2e_tp_rank_killed");
  const std::string bin = bitsweep::testing::BinaryDir();
  REQUIRE(Cli("make-tiny-model --out " + dir + "/model --seed 4", dir + "/make") == 0);
  std::string text;
  for (int i = 0; i < 4000; ++i) text += "A dog number " + std::to_string(i) + " ran home.\n";
  WriteFile(dir + "/data/wikitext2/wiki.test.raw", text);
  WriteFile(dir + "/tp.yaml", "name: tp\nmax_attempts: 3\nmodels: [" + dir +
                                  "/model]\nmethods:\n  - {method: rtn, wbits: [4], group: [16]}\n"
                                  "baseline: false\ntasks: [wikitext2]\neval: {seqlen: 64}\n"
                                  "resources: {devices: 2, tp: 2}\n");
  auto pg = StartPostgres(dir);
  const std::string db = Database(*pg, "tp");
  const std::string addr = "127.0.0.1:" + std::to_string(bitsweep::testing::FreePort());
  pid_t coord = bitsweep::testing::Spawn({bin + "/server/bitsweep-coordinator", "--listen", addr,
                                          "--db", db, "--metrics-listen", "", "--http-listen", ""},
                                         dir + "/coordinator.log");
  const std::string log = dir + "/worker.log";
  pid_t w = bitsweep::testing::Spawn(
      {bin + "/worker/bitsweep-worker", "--coordinator", addr, "--name", "w", "--artifacts",
       dir + "/artifacts", "--data-dir", dir + "/data", "--poll-seconds", "0.2", "--threads", "1",
       "--devices", "2", "--max-tp", "2"},
      log);
  KillAtExit kill_at_exit{{&coord, &w}};
  REQUIRE(Cli("submit " + dir + "/tp.yaml --coordinator " + addr, dir + "/submit") == 0);
  REQUIRE(bitsweep::testing::WaitForText(log, "leased job", 60));
  const pid_t launcher = WaitForChild(w, 10);
  REQUIRE(launcher > 0);
  pid_t rank0 = 0, rank1 = 0;
  WaitUntil(
      [&] {
        rank0 = RankOf(launcher, 0);
        rank1 = RankOf(launcher, 1);
        return rank0 > 0 && rank1 > 0;
      },
      std::chrono::seconds(10));
  REQUIRE(rank0 > 0);
  REQUIRE(rank1 > 0);
  // Mid-job: rank 1 has connected to rank 0 (the rendezvous store and the process group open
  // two or more TCP connections, before any model work).
  REQUIRE(WaitUntil([&] { return bitsweep::testing::EstablishedTcpConnections(rank1) >= 2; },
                    std::chrono::seconds(60)));
  ::kill(rank1, SIGKILL);
  REQUIRE(bitsweep::testing::WaitForText(log, "rank 1 of 2 was killed by signal 9", 60));
  CHECK(WaitForState(rank0, "-", 30));  // the surviving rank was stopped and reaped
  // The retry runs both ranks to the end.
  REQUIRE(Cli("watch 1 --coordinator " + addr, dir + "/watch") == 0);
  REQUIRE(Cli("results --format json --coordinator " + addr, dir + "/results") == 0);
  auto rows = nlohmann::json::parse(Slurp(dir + "/results"));
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["metric"] == "ppl");
  CHECK(rows[0]["provenance"]["tensor_parallel"] == 2);
  bitsweep::testing::Signal(w, SIGTERM);
  bitsweep::testing::Signal(coord, SIGTERM);
  w = coord = 0;
}
