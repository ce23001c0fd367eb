// Coordinator: the bitsweep coordinator process in one object. Start() opens (and migrates) the
// job store, starts the gRPC server with the Coordinator and WorkerGateway services, the
// default health service and server reflection, the plaintext health-only gRPC server (when
// config.health_listen is set), the Prometheus exposer, the web dashboard (HttpApi, when
// config.http_listen is set), and the lease reaper (JobStore::ExpireLeases(now) every
// reaper_interval, held for one lease TTL after the start and after a database outage:
// server/lease_reaper.h). The destructor shuts everything down.
//
//   ServerConfig config;  config.db = "host=... dbname=...";  config.listen = "127.0.0.1:0";
//   ASSIGN_OR_RETURN(auto coordinator, Coordinator::Start(config));
//   connect to 127.0.0.1:coordinator->port() ... coordinator->Shutdown();
//
// Thread-safe: port()/metrics_port()/health_port() are constant after Start; Shutdown may be called
// from any thread, more than once.
#pragma once

#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status.h"
#include "server/server_config.h"
#include "server/service_deps.h"
#include "store/job_store.h"

namespace grpc {
class Server;
class ServerCompletionQueue;
}  // namespace grpc

namespace bitsweep::server {

class CoordinatorService;
class HttpApi;
class MetricsHttp;
class WorkerGatewayService;

class Coordinator {
 public:
  // INVALID_ARGUMENT for a bad config (config.Validate()) or unreadable TLS files, UNAVAILABLE
  // when the database or a listen address cannot be reached or bound.
  static StatusOr<std::unique_ptr<Coordinator>> Start(const ServerConfig& config);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The bound gRPC port (the chosen one when config.listen asked for port 0).
  int port() const { return port_; }
  // The bound health-only gRPC port; 0 when config.health_listen is empty.
  int health_port() const { return health_port_; }
  // The bound /metrics port; 0 when config.metrics_listen is empty.
  int metrics_port() const { return metrics_port_; }
  // The bound dashboard (HTTP) port; 0 when config.http_listen is empty.
  int http_port() const;
  const ServerConfig& config() const { return config_; }
  store::JobStore& store() { return *store_; }

  // Turns both health services to NOT_SERVING, ends WatchSweep streams, lets in-flight RPCs
  // finish for up to `grace`, then cancels them; stops the health server (after the main one),
  // the reaper, the exposer and the dashboard. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(5));
  // Blocks until Shutdown() has completed.
  void Wait();

 private:
  explicit Coordinator(ServerConfig config);
  void ReapLoop();

  const ServerConfig config_;
  std::unique_ptr<store::JobStore> store_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<JobBoard> board_;
  ServiceDeps deps_;  // what the services share; deps_.now is also the reaper's clock
  std::unique_ptr<CoordinatorService> coordinator_service_;
  std::unique_ptr<WorkerGatewayService> worker_service_;
  std::unique_ptr<grpc::Server> server_;
  // The health server: only grpc.health.v1, plaintext. gRPC 1.51 builds no server without a
  // polled completion queue unless a service of its own has methods (the default health service
  // is added later), so it gets one, drained by health_cq_thread_ (nothing ever arrives on it).
  std::unique_ptr<grpc::ServerCompletionQueue> health_cq_;
  std::unique_ptr<grpc::Server> health_server_;
  std::thread health_cq_thread_;
  std::unique_ptr<MetricsHttp> metrics_http_;
  std::unique_ptr<HttpApi> http_;
  int port_ = 0;
  int health_port_ = 0;
  int metrics_port_ = 0;
  std::atomic<bool> stopping_{false};
  absl::Notification stop_reaper_;
  std::thread reaper_;
  absl::Mutex shutdown_mu_;
  absl::Notification shut_down_;
};

}  // namespace bitsweep::server
