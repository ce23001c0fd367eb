// bench_store: JobStore throughput against a private PostgreSQL (LocalPostgres).
//
// 1. SubmitSweep of --jobs jobs in one call (target: < 5 s for 10,000).
// 2. --threads threads (default 64), each with its own worker id, loop Lease + Complete over
//    no-op jobs until none is left; reports transitions/s (two per job) and per-call latency
//    percentiles (targets: >= 1000 transitions/s, lease p99 <= 50 ms), and checks that every
//    job was leased exactly once.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "store/job_store.h"
#include "store/local_postgres.h"

namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = static_cast<std::size_t>(p * (v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bitsweep::store;
  CLI::App app("bench_store: lease/complete throughput against a private PostgreSQL");
  int jobs = 10000;
  int threads = 64;
  int connections = 16;
  bool fsync = false;
  std::string data_dir = (std::filesystem::temp_directory_path() / "bitsweep-bench-store").string();
  app.add_option("--jobs", jobs, "jobs in the submitted sweep (all then leased and completed)");
  app.add_option("--threads", threads, "concurrent leasing workers");
  app.add_option("--connections", connections, "JobStore connection pool size");
  app.add_flag("--fsync", fsync, "durable server settings (fsync, synchronous_commit on)");
  app.add_option("--data-dir", data_dir, "scratch data directory (wiped)");
  CLI11_PARSE(app, argc, argv);
  std::printf("bench_store: jobs=%d threads=%d connections=%d fsync=%s\n", jobs, threads,
              connections, fsync ? "on" : "off");

  std::filesystem::remove_all(data_dir);
  LocalPostgresOptions pg_options;
  pg_options.data_dir = data_dir;
  pg_options.fsync = fsync;
  pg_options.stop_with_owner = true;  // a killed benchmark leaves no server running
  auto pg = LocalPostgres::Start(pg_options);
  if (!pg.ok()) {
    std::fprintf(stderr, "LocalPostgres: %s\n", pg.status().ToString().c_str());
    return 1;
  }
  JobStoreOptions options;
  options.max_connections = connections;
  auto opened = JobStore::Open((*pg)->conninfo(), options);
  if (!opened.ok()) {
    std::fprintf(stderr, "JobStore::Open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  JobStore& store = **opened;

  std::vector<NewJob> batch;
  for (int i = 0; i < jobs; ++i) {
    NewJob j;
    j.job_key = "bench/job/" + std::to_string(i);
    j.artifact_key = "model-" + std::to_string(i % 4);
    j.spec_json = R"({"model": "qwen3-0.6b", "method": "gptq", "bits": 4, "index": )" +
                  std::to_string(i) + "}";
    j.priority = i % 3;
    batch.push_back(std::move(j));
  }
  const auto t_submit = Clock::now();
  auto sweep = store.SubmitSweep("bench-request", "bench", "{}", 0, batch, absl::Now());
  const double submit_ms = Ms(Clock::now() - t_submit);
  if (!sweep.ok()) {
    std::fprintf(stderr, "SubmitSweep: %s\n", sweep.status().ToString().c_str());
    return 1;
  }
  std::printf("submit: %d jobs in %.1f ms (target < 5000 ms) %s\n", jobs, submit_ms,
              submit_ms < 5000 ? "OK" : "MISSED");

  std::vector<int64_t> workers;
  for (int t = 0; t < threads; ++t) {
    WorkerInfo w;
    w.name = "bench-worker-" + std::to_string(t);
    auto id = store.RegisterWorker(w, absl::Now());
    if (!id.ok()) {
      std::fprintf(stderr, "RegisterWorker: %s\n", id.status().ToString().c_str());
      return 1;
    }
    workers.push_back(*id);
  }

  std::mutex mu;
  std::vector<double> lease_ms, complete_ms;
  std::vector<int64_t> leased_ids;
  std::atomic<int> errors{0};
  const auto t_run = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<double> my_lease, my_complete;
      std::vector<int64_t> my_ids;
      for (;;) {
        auto t0 = Clock::now();
        auto l = store.Lease(workers[t], absl::Now(), absl::Seconds(60));
        my_lease.push_back(Ms(Clock::now() - t0));
        if (!l.ok()) {
          if (errors++ == 0) std::fprintf(stderr, "Lease: %s\n", l.status().ToString().c_str());
          break;
        }
        if (!l->has_value()) break;
        auto t1 = Clock::now();
        auto st = store.Complete((*l)->job_id, (*l)->epoch, {}, absl::Now());
        my_complete.push_back(Ms(Clock::now() - t1));
        if (!st.ok()) {
          if (errors++ == 0) std::fprintf(stderr, "Complete: %s\n", st.status().ToString().c_str());
        }
        my_ids.push_back((*l)->job_id);
      }
      std::lock_guard<std::mutex> lock(mu);
      lease_ms.insert(lease_ms.end(), my_lease.begin(), my_lease.end());
      complete_ms.insert(complete_ms.end(), my_complete.begin(), my_complete.end());
      leased_ids.insert(leased_ids.end(), my_ids.begin(), my_ids.end());
    });
  }
  for (auto& t : pool) t.join();
  const double run_s = Ms(Clock::now() - t_run) / 1000.0;
  const std::size_t unique = std::set<int64_t>(leased_ids.begin(), leased_ids.end()).size();
  const double transitions = 2.0 * leased_ids.size();
  const double rate = transitions / run_s;
  const double lease_p99 = Percentile(lease_ms, 0.99);
  std::printf("lease+complete: %zu jobs (%zu distinct) in %.2f s, errors=%d\n", leased_ids.size(),
              unique, run_s, errors.load());
  std::printf("transitions/s: %.0f (target >= 1000) %s\n", rate, rate >= 1000 ? "OK" : "MISSED");
  std::printf("lease ms: p50 %.2f p99 %.2f max %.2f (target p99 <= 50) %s\n",
              Percentile(lease_ms, 0.5), lease_p99, Percentile(lease_ms, 1.0),
              lease_p99 <= 50 ? "OK" : "MISSED");
  std::printf("complete ms: p50 %.2f p99 %.2f\n", Percentile(complete_ms, 0.5),
              Percentile(complete_ms, 0.99));
  // Closed loop: each thread's lease + complete cycle lasts threads / (jobs per second), so a
  // lease p99 under 50 ms with 64 threads needs about 64 / 0.05 * 2 = 2560 transitions/s at least.
  std::printf("closed-loop bound: lease p99 <= 50 ms needs >= %.0f transitions/s with %d threads\n",
              2.0 * threads / 0.05, threads);
  const bool exact = unique == leased_ids.size() && static_cast<int>(unique) == jobs;
  std::printf("every job leased exactly once: %s\n", exact ? "yes" : "NO");
  return errors == 0 && exact ? 0 : 1;
}
