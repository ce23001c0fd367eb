// bench/soak: the chaos soak of issue 17. A 2,000-job sweep runs on real processes: a private
// PostgreSQL (store/local_postgres.h), the real bitsweep-coordinator binary, and workers running
// the real worker loop (bench_soak_worker: worker/service.h RunWorker) whose job process is
// bench_soak_job (a trivial job: it sleeps and reports two metrics from its spec), reaching the
// coordinator over gRPC through a TCP proxy (bench/soak_proxy.h). For --duration seconds, at
// random moments, it injects: SIGKILLed workers (started again on the same state directory),
// coordinator restarts (SIGKILL, start again), PostgreSQL restarts, proxy delays and proxy
// connection resets; and once, mid-window, a coordinator outage of 2 x the lease TTL. Then it
// waits until every job is terminal and checks the database (bench/soak_check.h): every job
// SUCCEEDED, each with exactly one result set, written by the worker that held its final lease.
// Prints the jobs, the faults injected by kind, results lost and duplicated; exits 1 when any
// result is lost, duplicated or misattributed, or a job did not succeed.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/soak_check.h"
#include "bench/soak_proxy.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "common/process.h"
#include "store/local_postgres.h"

namespace {

namespace fs = std::filesystem;
namespace pb = bitsweep::v1;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void Say(const std::string& line) {
  static const auto t0 = Clock::now();
  std::printf("[%7.1fs] %s\n", Since(t0), line.c_str());
  std::fflush(stdout);
}

// A child process the soak owns: started with PR_SET_PDEATHSIG (it dies with the soak),
// output appended to its log.
struct Child {
  std::vector<std::string> argv;
  std::string log;
  pid_t pid = 0;

  void Start() {
    bitsweep::SpawnOptions options;
    options.parent_death_signal = SIGKILL;
    pid = bitsweep::SpawnLogged(argv, log, options);
  }
  void Kill() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = 0;
  }
  // Whether it exited on its own (reaped); false while it runs or when not started.
  bool Exited(int* status) {
    if (pid <= 0) return false;
    if (::waitpid(pid, status, WNOHANG) != pid) return false;
    pid = 0;
    return true;
  }
  // SIGTERM, then SIGKILL after `grace`; true when it exited within the grace.
  bool Stop(milliseconds grace) {
    if (pid <= 0) return true;
    ::kill(pid, SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (Clock::now() < deadline) {
      if (::waitpid(pid, nullptr, WNOHANG) == pid) {
        pid = 0;
        return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    Kill();
    return false;
  }
};

std::string SelfDir() {
  std::error_code ec;
  return fs::read_symlink("/proc/self/exe", ec).parent_path().string();
}

// models x (rtn: 5 wbits x 4 groups) x 10 tasks = 200 jobs per model.
std::string SweepYaml(int models) {
  std::string yaml = "name: soak\nbaseline: false\nmax_attempts: 20\nmodels:\n";
  for (int m = 0; m < models; ++m) yaml += absl::StrCat("  - /soak/model-", m, "\n");
  yaml +=
      "methods:\n  - {method: rtn, wbits: [2, 3, 4, 5, 6], group: [32, 64, 128, 256]}\n"
      "tasks: [wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, "
      "mmlu, /soak/custom.jsonl]\n";
  return yaml;
}

// Submits the sweep (idempotent by request id: retried until the coordinator answers).
int64_t Submit(const std::string& address, const std::string& yaml) {
  auto stub = pb::Coordinator::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  pb::SubmitSweepRequest request;
  request.set_request_id("soak-1");
  request.set_sweep_yaml(yaml);
  request.set_source_name("soak.yaml");
  for (int attempt = 0; attempt < 120; ++attempt) {
    pb::SubmitSweepResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    const grpc::Status st = stub->SubmitSweep(&ctx, request, &response);
    if (st.ok()) return response.sweep().total();
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      Say("submit: " + st.error_message());
      return -1;
    }
    std::this_thread::sleep_for(milliseconds(500));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  int models = 10, workers = 6, job_ms = 0;
  double duration_s = 240, ttl_s = 4, fault_every_s = 5, settle_s = 900;
  unsigned seed = std::random_device{}();
  std::string scratch = "/tmp/bitsweep-bench-soak";
  std::string bin_dir = SelfDir();
  std::string coordinator_bin = bin_dir + "/../server/bitsweep-coordinator";
  CLI::App app{"Chaos soak: a sweep on real processes under injected faults; no result may be "
               "lost or duplicated"};
  app.add_option("--models", models, "Models in the sweep (x 200 jobs each)")
      ->capture_default_str();
  app.add_option("--workers", workers, "Worker processes")->capture_default_str();
  app.add_option("--duration", duration_s, "Seconds of fault injection")->capture_default_str();
  app.add_option("--lease-ttl", ttl_s, "The coordinator's --lease-ttl (seconds)")
      ->capture_default_str();
  app.add_option("--fault-every", fault_every_s, "Mean seconds between faults")
      ->capture_default_str();
  app.add_option("--job-ms", job_ms,
                 "Mean milliseconds of one job (0: so that the sweep lasts about --duration)");
  app.add_option("--settle", settle_s, "Most seconds to wait for the jobs after the faults")
      ->capture_default_str();
  app.add_option("--seed", seed, "Random seed of the fault schedule (default: random)");
  app.add_option("--scratch", scratch, "Working folder (emptied first)")->capture_default_str();
  app.add_option("--coordinator-bin", coordinator_bin, "bitsweep-coordinator")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  for (const std::string& exe : {coordinator_bin, bin_dir + "/bench_soak_worker",
                                  bin_dir + "/bench_soak_job"}) {
    if (::access(exe.c_str(), X_OK) != 0 && (workers > 0 || exe == coordinator_bin)) {
      return std::fprintf(stderr, "%s is not built (cmake --build build --target bench_soak "
                                  "bench_soak_worker)\n", exe.c_str()), 1;
    }
  }
  const int64_t planned_jobs = 200LL * models;
  if (job_ms <= 0 && workers > 0) {
    job_ms = static_cast<int>(duration_s * 1000.0 * workers / static_cast<double>(planned_jobs));
  }
  std::mt19937 rng(seed);
  auto uniform = [&](double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  };
  Say(absl::StrCat("seed ", seed, ", ", planned_jobs, " jobs, ", workers, " workers, jobs of ~",
                   job_ms, " ms, lease TTL ", ttl_s, " s, faults every ~", fault_every_s,
                   " s for ", duration_s, " s"));

  fs::remove_all(scratch);
  fs::create_directories(scratch);
  bitsweep::store::LocalPostgresOptions po;
  po.data_dir = scratch + "/pg";
  po.stop_with_owner = true;  // a killed soak leaves no server running
  auto pg = bitsweep::store::LocalPostgres::Start(po);
  if (!pg.ok()) return std::fprintf(stderr, "%s\n", pg.status().ToString().c_str()), 1;
  auto db = (*pg)->CreateDatabase("soak");
  if (!db.ok()) return std::fprintf(stderr, "%s\n", db.status().ToString().c_str()), 1;

  const int coordinator_port = bitsweep::FreePort();
  Child coordinator{{coordinator_bin, "--listen", absl::StrCat("127.0.0.1:", coordinator_port),
                     "--db", *db, "--metrics-listen", "", "--http-listen", "", "--lease-ttl",
                     absl::StrCat(ttl_s), "--no-input-checks"},
                    scratch + "/coordinator.log"};
  coordinator.Start();
  auto proxy = bitsweep::bench::SoakProxy::Start(0, coordinator_port);
  if (proxy == nullptr) return std::fprintf(stderr, "the proxy cannot listen\n"), 1;
  const std::string via_proxy = absl::StrCat("127.0.0.1:", proxy->port());

  const int64_t total =
      Submit(absl::StrCat("127.0.0.1:", coordinator_port), SweepYaml(models));
  if (total != planned_jobs) {
    return std::fprintf(stderr, "submit failed (see %s/coordinator.log)\n", scratch.c_str()), 1;
  }
  Say(absl::StrCat("submitted ", total, " jobs"));

  ::setenv("BITSWEEP_SOAK_JOB_MS", std::to_string(job_ms).c_str(), 1);
  std::vector<Child> pool;
  for (int w = 0; w < workers; ++w) {
    const std::string dir = absl::StrCat(scratch, "/w", w);
    fs::create_directories(dir + "/artifacts");
    pool.push_back(Child{{bin_dir + "/bench_soak_worker", "--coordinator", via_proxy, "--name",
                          absl::StrCat("soak-w", w), "--state-dir", dir + "/state", "--artifacts",
                          dir + "/artifacts", "--job-exe", bin_dir + "/bench_soak_job",
                          "--poll-seconds", "0.2"},
                         dir + "/worker.log"});
    pool.back().Start();
  }
  std::vector<Clock::time_point> restart_at(workers, Clock::time_point::max());

  std::map<std::string, int> faults;   // injected, by kind
  std::map<std::string, int> crashes;  // processes that exited without being told to
  auto restart_coordinator = [&](double down_s) {
    coordinator.Kill();
    std::this_thread::sleep_for(std::chrono::duration<double>(down_s));
    coordinator.Start();
  };
  const auto t0 = Clock::now();
  const double outage_at = uniform(0.3, 0.6) * duration_s;
  bool outage_done = false;
  auto next_fault = t0 + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(uniform(0.5, 1.5) * fault_every_s));
  auto delay_until = Clock::time_point::min();
  auto last_report = t0;
  auto reap = [&] {  // processes that died on their own are counted and started again
    int status = 0;
    if (coordinator.Exited(&status)) {
      ++crashes["coordinator"];
      Say(absl::StrCat("coordinator exited by itself (status ", status, "): starting it again"));
      coordinator.Start();
    }
    for (int w = 0; w < workers; ++w) {
      if (pool[w].Exited(&status)) {
        ++crashes["worker"];
        Say(absl::StrCat("worker ", w, " exited by itself (status ", status,
                         "): starting it again in 1 s"));
        restart_at[w] = Clock::now() + std::chrono::seconds(1);
      }
      if (pool[w].pid == 0 && Clock::now() >= restart_at[w]) {
        pool[w].Start();
        restart_at[w] = Clock::time_point::max();
      }
    }
  };

  while (Since(t0) < duration_s) {
    std::this_thread::sleep_for(milliseconds(100));
    reap();
    if (Clock::now() >= delay_until && delay_until != Clock::time_point::min()) {
      proxy->SetDelayMs(0);
      delay_until = Clock::time_point::min();
    }
    if (Since(last_report) >= 15) {
      last_report = Clock::now();
      Say(absl::StrCat(bitsweep::bench::UnfinishedJobs(*db), " jobs not finished"));
    }
    if (!outage_done && Since(t0) >= outage_at) {
      outage_done = true;
      ++faults["outage_2x_ttl"];
      Say(absl::StrCat("outage: the coordinator is down for ", 2 * ttl_s, " s"));
      restart_coordinator(2 * ttl_s);
      continue;
    }
    if (Clock::now() < next_fault) continue;
    next_fault = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(
                                        std::exponential_distribution<double>(
                                            1.0 / fault_every_s)(rng)));
    const int kind = std::uniform_int_distribution<int>(0, 4)(rng);
    if (kind == 0) {
      if (workers == 0) continue;
      const int w = std::uniform_int_distribution<int>(0, workers - 1)(rng);
      if (pool[w].pid <= 0) continue;
      pool[w].Kill();
      restart_at[w] = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(uniform(0, 2)));
      ++faults["worker_sigkill"];
      Say(absl::StrCat("SIGKILL worker ", w));
    } else if (kind == 1) {
      restart_coordinator(0);
      ++faults["coordinator_restart"];
      Say("coordinator restarted (SIGKILL)");
    } else if (kind == 2) {
      const auto st = (*pg)->Restart();
      ++faults["postgres_restart"];
      Say("PostgreSQL restarted" + (st.ok() ? std::string() : ": " + st.ToString()));
    } else if (kind == 3) {
      const int n = proxy->ResetAll();
      ++faults["proxy_reset"];
      faults["proxy_reset_connections"] += n;
      Say(absl::StrCat("proxy: reset ", n, " connections"));
    } else {
      const int ms = std::uniform_int_distribution<int>(20, 400)(rng);
      const double for_s = uniform(2, 8);
      proxy->SetDelayMs(ms);
      delay_until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                       std::chrono::duration<double>(for_s));
      ++faults["proxy_delay"];
      Say(absl::StrCat("proxy: ", ms, " ms delay per chunk for ", static_cast<int>(for_s), " s"));
    }
  }
  proxy->SetDelayMs(0);
  Say("faults stopped; waiting for every job to finish");
  const auto ts = Clock::now();
  int64_t unfinished = -1;
  while (Since(ts) < settle_s) {
    reap();
    unfinished = bitsweep::bench::UnfinishedJobs(*db);
    if (unfinished == 0) break;
    if (Since(last_report) >= 15) {
      last_report = Clock::now();
      Say(absl::StrCat(unfinished, " jobs not finished"));
    }
    std::this_thread::sleep_for(milliseconds(500));
  }
  const double wall_s = Since(t0);
  for (Child& w : pool) w.Stop(std::chrono::seconds(20));
  coordinator.Stop(std::chrono::seconds(20));
  int spooled = 0;  // results still in a worker's spool (fenced ones are discarded at next start)
  for (int w = 0; w < workers; ++w) {
    std::error_code ec;
    for (const auto& e : fs::recursive_directory_iterator(
             absl::StrCat(scratch, "/w", w, "/state"), ec)) {
      if (e.path().filename().string().rfind("job-", 0) == 0) ++spooled;
    }
  }

  bitsweep::bench::SoakVerdict v;
  try {
    v = bitsweep::bench::CheckSoak(*db);
  } catch (const std::exception& e) {
    return std::fprintf(stderr, "cannot read the verdict: %s\n", e.what()), 1;
  }
  std::printf("\nchaos soak (seed %u): %lld jobs, %.0f s (faults for %.0f s), %d workers, "
              "lease TTL %g s\n",
              seed, static_cast<long long>(v.jobs), wall_s, duration_s, workers, ttl_s);
  std::string states;
  for (const auto& [state, n] : v.states) states += absl::StrCat(" ", state, "=", n);
  std::printf("  jobs by state:%s\n", states.c_str());
  int total_faults = 0;
  for (const auto& [kind, n] : faults) {
    if (kind != "proxy_reset_connections") total_faults += n;
    std::printf("  fault %-24s %d\n", kind.c_str(), n);
  }
  std::printf("  faults injected          %d\n", total_faults);
  for (const auto& [what, n] : crashes) std::printf("  %s exits unasked: %d\n", what.c_str(), n);
  std::printf("  proxy connections        %ld\n", proxy->accepted());
  std::printf("  results left in spools   %d\n", spooled);
  std::printf("  not terminal             %lld\n", static_cast<long long>(v.not_terminal));
  std::printf("  results lost             %lld (must be 0)\n", static_cast<long long>(v.lost));
  std::printf("  results duplicated       %lld (must be 0)\n",
              static_cast<long long>(v.duplicated));
  std::printf("  written by another lease %lld (must be 0)\n",
              static_cast<long long>(v.wrong_writer));
  std::printf("  values of another job    %lld (must be 0)\n",
              static_cast<long long>(v.wrong_values));
  if (!v.failed_example.empty()) std::printf("  a FAILED job: %s\n", v.failed_example.c_str());
  std::string moved;
  bool bites = false;
  try {
    bites = bitsweep::bench::CheckerBites(*db, &moved);
  } catch (const std::exception& e) {
    moved = e.what();
  }
  std::printf("  checker self-test        %s (broken copy, rolled back: %s)\n",
              bites ? "bites" : "FAILED", moved.c_str());
  const bool ok = v.ok() && v.jobs == planned_jobs && bites;
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
