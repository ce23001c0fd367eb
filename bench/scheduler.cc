// bench/scheduler: the coordinator under load, end to end: a private PostgreSQL, the real
// coordinator (in-process, gRPC on loopback), a 10,000-job sweep submitted over gRPC, and 64
// simulated workers (threads, each with its own channel) leasing and completing no-op jobs
// through WorkerGateway. Prints the submit time, job transitions per second (lease + complete
// = 2 per job) and the Lease RPC latency p50/p99, against the targets; the share of
// leases placed on a worker already holding the job's artifact; and, measured first, the floor:
// the same clients making no-op health-check calls to the same server.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

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

#include "absl/strings/str_cat.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"
#include "store/local_postgres.h"

namespace {
namespace pb = bitsweep::v1;
using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

int main(int argc, char** argv) {
  int workers = 64, models = 100;
  std::string scratch = "/tmp/bitsweep-bench-scheduler";
  CLI::App app{
      "Coordinator throughput and lease latency with simulated workers (gRPC + PostgreSQL)"};
  app.add_option("--workers", workers, "Simulated workers (threads)")->capture_default_str();
  app.add_option("--models", models, "Models in the sweep (x 100 jobs each)")
      ->capture_default_str();
  app.add_option("--scratch", scratch, "PostgreSQL data folder")->capture_default_str();
  int db_connections = bitsweep::server::ServerConfig().db_connections;
  app.add_option("--db-connections", db_connections, "The coordinator's PostgreSQL connections")
      ->capture_default_str();
  int floor_calls = 200;
  app.add_option("--floor-calls", floor_calls,
                 "No-op health-check calls per simulated worker before the run (0: none)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::filesystem::remove_all(scratch);
  bitsweep::store::LocalPostgresOptions po;
  po.data_dir = scratch;
  po.fsync = false;
  po.stop_with_owner = true;  // a killed benchmark leaves no server running
  auto pg = bitsweep::store::LocalPostgres::Start(po);
  if (!pg.ok()) return std::fprintf(stderr, "%s\n", pg.status().ToString().c_str()), 1;
  auto db = (*pg)->CreateDatabase("bench");
  if (!db.ok()) return std::fprintf(stderr, "%s\n", db.status().ToString().c_str()), 1;
  bitsweep::server::ServerConfig config;
  config.db = *db;
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.db_connections = db_connections;
  config.check_inputs = false;  // the sweep names model folders that do not exist: no job runs
  auto coordinator = bitsweep::server::Coordinator::Start(config);
  if (!coordinator.ok()) {
    return std::fprintf(stderr, "%s\n", coordinator.status().ToString().c_str()), 1;
  }
  const std::string addr = absl::StrCat("127.0.0.1:", (*coordinator)->port());

  // models x (rtn w2..w8 + gptq w2..w4 = 10 configs) x 10 tasks (no baseline) = 100 per model.
  std::string yaml = "name: bench\nbaseline: false\nmodels:\n";
  for (int m = 0; m < models; ++m) yaml += absl::StrCat("  - /nonexistent/model-", m, "\n");
  yaml +=
      "methods:\n  - {method: rtn, wbits: [2, 3, 4, 5, 6, 7, 8], group: [128]}\n"
      "  - {method: gptq, wbits: [2, 3, 4], group: [128]}\n"
      "tasks: [wikitext2, c4, piqa, arc_easy, arc_challenge, hellaswag, winogrande, boolq, "
      "mmlu, /data/custom.jsonl]\n";
  auto client =
      pb::Coordinator::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
  pb::SubmitSweepRequest sreq;
  sreq.set_request_id("bench-1");
  sreq.set_sweep_yaml(yaml);
  sreq.set_source_name("bench.yaml");
  pb::SubmitSweepResponse sresp;
  const auto ts = Clock::now();
  {
    grpc::ClientContext ctx;
    auto st = client->SubmitSweep(&ctx, sreq, &sresp);
    if (!st.ok()) return std::fprintf(stderr, "submit: %s\n", st.error_message().c_str()), 1;
  }
  const double submit_s = Since(ts);
  const int64_t total = sresp.sweep().total();

  // The floor: the same 64 threads and channels making no-op unary calls (the health check)
  // against the same server, so the lease latency can be read against what gRPC alone costs.
  std::vector<double> noop_ms;
  double noop_s = 0;
  if (floor_calls > 0) {
    std::mutex fmu;
    const auto tf = Clock::now();
    std::vector<std::thread> fthreads;
    for (int w = 0; w < workers; ++w) {
      fthreads.emplace_back([&] {
        auto channel = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
        grpc::GenericStub stub(channel);
        std::vector<double> mine;
        for (int i = 0; i < floor_calls; ++i) {
          const auto tl = Clock::now();
          grpc::CompletionQueue cq;
          grpc::ClientContext ctx;
          grpc::Slice slice("");
          grpc::ByteBuffer request(&slice, 1);
          auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
          call->StartCall();
          grpc::ByteBuffer response;
          grpc::Status status;
          call->Finish(&response, &status, reinterpret_cast<void*>(1));
          void* tag = nullptr;
          bool ok = false;
          cq.Next(&tag, &ok);
          cq.Shutdown();
          while (cq.Next(&tag, &ok)) {
          }
          mine.push_back(1000 * Since(tl));
        }
        std::lock_guard<std::mutex> lock(fmu);
        noop_ms.insert(noop_ms.end(), mine.begin(), mine.end());
      });
    }
    for (auto& t : fthreads) t.join();
    noop_s = Since(tf);
    std::sort(noop_ms.begin(), noop_ms.end());
  }

  std::mutex mu;
  std::vector<double> lease_ms;
  std::atomic<int64_t> completed{0};
  // Leases of a job whose artifact the worker already holds (it completed a job on it before).
  std::atomic<int64_t> affine{0};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      auto stub =
          pb::WorkerGateway::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
      pb::RegisterRequest reg;
      reg.set_name(absl::StrCat("sim-", w));
      reg.set_devices(1);
      reg.set_max_tp(1);
      pb::RegisterResponse rr;
      {
        grpc::ClientContext ctx;
        if (!stub->Register(&ctx, reg, &rr).ok()) return;
      }
      std::vector<double> mine;
      std::set<std::string> held;
      while (true) {
        pb::LeaseRequest lr;
        lr.set_worker_id(rr.worker_id());
        pb::LeaseResponse lease;
        const auto tl = Clock::now();
        grpc::ClientContext ctx;
        if (!stub->Lease(&ctx, lr, &lease).ok()) break;
        mine.push_back(1000 * Since(tl));
        if (!lease.has_job()) break;
        if (held.count(lease.artifact_key())) ++affine;
        pb::CompleteRequest c;
        c.set_worker_id(rr.worker_id());
        c.set_job_id(lease.job_id());
        c.set_lease_epoch(lease.lease_epoch());
        pb::Metric* m = c.add_metrics();
        m->set_name("acc");
        m->set_value(0.5);
        pb::CompleteResponse cr;
        grpc::ClientContext cctx;
        if (stub->Complete(&cctx, c, &cr).ok()) {
          ++completed;
          held.insert(lease.artifact_key());
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      lease_ms.insert(lease_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double run_s = Since(t0);
  std::sort(lease_ms.begin(), lease_ms.end());
  auto pct = [&](double p) {
    return lease_ms.empty() ? 0.0 : lease_ms[static_cast<size_t>(p * (lease_ms.size() - 1))];
  };
  std::printf("sweep of %lld jobs submitted over gRPC in %.2f s (target < 5 s)\n",
              static_cast<long long>(total), submit_s);
  std::printf("%d workers completed %lld jobs in %.2f s: %.0f transitions/s (target >= 1000)\n",
              workers, static_cast<long long>(completed.load()), run_s,
              2.0 * static_cast<double>(completed.load()) / run_s);
  std::printf("Lease RPC latency: p50 %.1f ms, p99 %.1f ms (target p99 <= 50 ms), %zu calls\n",
              pct(0.5), pct(0.99), lease_ms.size());
  std::printf(
      "Leases on an artifact the worker holds: %.0f%% (each of the %d artifacts has 10 jobs: at "
      "most 90%%)\n",
      100.0 * static_cast<double>(affine.load()) / std::max<double>(1, completed.load()),
      10 * models);
  if (!noop_ms.empty()) {
    auto npct = [&](double p) { return noop_ms[static_cast<size_t>(p * (noop_ms.size() - 1))]; };
    std::printf(
        "No-op RPC floor (health check, same clients): %.0f calls/s, p50 %.1f ms, p99 %.1f ms\n",
        static_cast<double>(noop_ms.size()) / noop_s, npct(0.5), npct(0.99));
  }
  (*coordinator)->Shutdown(absl::Seconds(1));
  (*coordinator)->Wait();
  return completed.load() == total ? 0 : 1;
}
