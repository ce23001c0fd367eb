// WorkerMetrics: every Prometheus family of a worker process, built once at start-up, so every
// series exists (at 0) before its first event. Labels are low-cardinality only, so the number of
// series stays bounded however many jobs run: catalog method and task kind, job outcome, heartbeat
// result, cache result; never job ids, paths or worker names. Thread-safe (prometheus-cpp families
// and metrics are).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace bitsweep::worker {

// The worker build's version, as bitsweep_worker_info{version} reports it.
inline constexpr char kWorkerVersion[] = "0.1.0";

class WorkerMetrics {
 public:
  // Sets bitsweep_worker_info{version} = 1.
  explicit WorkerMetrics(const std::string& version);

  std::shared_ptr<prometheus::Collectable> registry() const { return registry_; }

  // bitsweep_worker_busy: 1 while a job's child process runs.
  void SetBusy(bool busy) { busy_->Set(busy ? 1 : 0); }
  // result: "ok", "error" or "fenced".
  void CountHeartbeat(const std::string& result);
  // bitsweep_worker_results_discarded_total{reason}: a finished result dropped from the spool
  // without being delivered; reason "fenced" (the lease was taken away), "refused" (the
  // coordinator answered INVALID_ARGUMENT) or "other_database" (spooled under a coordinator of
  // another database).
  void CountDiscardedResult(const std::string& reason);
  // bitsweep_worker_complete_retries_total: a Complete that will be tried again.
  void CountCompleteRetry() { complete_retries_->Increment(); }
  // One finished job. `spec_json` is the leased JobSpec (method and task kind labels; "unknown"
  // when it does not parse); outcome: "succeeded", "failed", "canceled" or "lost"; `result_json`
  // is the child's result file ({"metrics", "provenance"}; may be empty): a succeeded job counts
  // an artifact cache hit or miss (provenance.artifact_reused) and, for a perplexity task, sets
  // bitsweep_worker_tokens_per_second (provenance.eval.tokens_per_second).
  void ObserveJob(const std::string& spec_json, const std::string& outcome, double seconds,
                  const std::string& result_json);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* jobs_;
  prometheus::Family<prometheus::Histogram>* job_duration_;
  prometheus::Family<prometheus::Counter>* heartbeats_;
  prometheus::Family<prometheus::Counter>* discarded_;
  prometheus::Counter* complete_retries_;
  prometheus::Gauge* busy_;
  prometheus::Family<prometheus::Counter>* cache_;
  prometheus::Gauge* tokens_per_second_;
};

// The metrics listener's HTTPS (PEM files): cert and key serve HTTPS (the certificate must name
// the address Prometheus scrapes, e.g. the pod's DNS name); ca also requires every client to
// present a certificate it signed (mutual TLS). All empty: plain HTTP.
struct MetricsTlsFiles {
  std::string cert, key, ca;
};

// A minimal HTTP(S) server for GET /metrics (Prometheus text format 0.0.4) on its own thread. The
// worker cannot use prometheus::Exposer: civetweb starts its threads with a fixed small stack,
// and glibc refuses such a stack in a process whose static TLS is as large as libtorch's
// ("Cannot create threads", EINVAL without a clone). One thread serves every connection at once
// (poll over non-blocking sockets; with TLS, non-blocking OpenSSL whose handshake, reads and
// writes wait in the same poll), each within a whole-request deadline from its accept to its last
// byte: a client that sends a byte now and then, or half a TLS handshake, is cut off when its
// deadline passes, and never delays the others, so a slow client cannot starve the liveness
// probe. Beyond kMaxConnections open at once, the oldest is closed to make room.
class MetricsServer {
 public:
  // Most connections served at once.
  static constexpr int kMaxConnections = 64;
  // Listens on `address` (IPv4 "host:port"; port 0 = any free one) and serves `collectable`;
  // each connection gets `request_deadline` from its accept to its last byte sent. HTTPS when
  // tls.cert is set. INVALID_ARGUMENT naming the flag (--metrics-tls-cert, -key, -ca) for TLS
  // files that cannot be used, or naming metrics_listen for a malformed address; UNAVAILABLE
  // when it cannot be bound.
  static StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Collectable> collectable,
      std::chrono::milliseconds request_deadline = std::chrono::seconds(5),
      const MetricsTlsFiles& tls = {});
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  bool https() const { return tls_ != nullptr; }

 private:
  MetricsServer(int fd, int port, std::shared_ptr<prometheus::Collectable> collectable,
                std::chrono::milliseconds request_deadline, ssl_ctx_st* tls);
  void Serve();
  // The full HTTP response to `request` (its head as received).
  std::string Respond(const std::string& request) const;

  int fd_;
  int port_;
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::chrono::milliseconds request_deadline_;
  ssl_ctx_st* tls_;  // owned; null: plain HTTP
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace bitsweep::worker
