// bench_soak_worker: one worker of bench/soak. The real worker loop (worker/service.h RunWorker:
// Register, Lease, heartbeats, the result spool, Complete with retries, the spool re-sent at
// start), with bench_soak_job as its job process instead of `bitsweep-worker run-job`. Stops on
// SIGTERM; bench/soak also SIGKILLs it and starts it again on the same state directory.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <string>

#include "worker/service.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  bitsweep::worker::WorkerOptions o;
  CLI::App app{"bench_soak_worker: the real worker loop with a trivial job process"};
  app.add_option("--coordinator", o.coordinator)->required();
  app.add_option("--name", o.name)->required();
  app.add_option("--state-dir", o.state_dir)->required();
  app.add_option("--artifacts", o.artifact_root)->required();
  app.add_option("--job-exe", o.self_exe, "bench_soak_job")->required();
  app.add_option("--poll-seconds", o.poll_seconds)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  o.data_dir = o.artifact_root;
  o.threads = 1;
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  const bitsweep::Status s = bitsweep::worker::RunWorker(o, &g_stop);
  if (!s.ok()) {
    std::fprintf(stderr, "bench_soak_worker: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
