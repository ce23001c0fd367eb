#include "server/coordinator.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/impl/server_builder_option.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "server/coordinator_service.h"
#include "server/http_api.h"
#include "server/job_board.h"
#include "server/lease_reaper.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/worker_gateway.h"

namespace bitsweep::server {
namespace {

StatusOr<std::string> ReadPem(const std::string& field, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(field, ": cannot read '", path, "'"));
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' is empty"));
  }
  return text.str();
}

StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(const ServerConfig& config) {
  if (!config.tls()) return grpc::InsecureServerCredentials();
  ASSIGN_OR_RETURN(std::string cert, ReadPem("tls_cert", config.tls_cert));
  ASSIGN_OR_RETURN(std::string key, ReadPem("tls_key", config.tls_key));
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!config.tls_ca.empty()) {
    ASSIGN_OR_RETURN(options.pem_root_certs, ReadPem("tls_ca", config.tls_ca));
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  options.pem_key_cert_pairs.push_back({key, cert});
  return grpc::SslServerCredentials(options);
}

// Drops every ServerBuilder plugin, among them the server reflection that
// InitProtoReflectionServerBuilderPlugin() installs in every builder, so the health server
// serves nothing but the default health service.
class WithoutPlugins : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments* /*args*/) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->clear();
  }
};

}  // namespace

Coordinator::Coordinator(ServerConfig config) : config_(std::move(config)) {}

StatusOr<std::unique_ptr<Coordinator>> Coordinator::Start(const ServerConfig& config) {
  RETURN_IF_ERROR(config.Validate());
  ASSIGN_OR_RETURN(auto credentials, Credentials(config));
  std::unique_ptr<Coordinator> c(new Coordinator(config));
  store::JobStoreOptions store_options;
  store_options.max_connections = config.db_connections;
  ASSIGN_OR_RETURN(c->store_, store::JobStore::Open(config.db, store_options));
  c->metrics_ = std::make_unique<ServerMetrics>(c->store_.get());
  c->metrics_->SetConfig(config.tls(), !config.client_token.empty() || !config.worker_token.empty(),
                         absl::ToDoubleSeconds(config.lease_ttl));
  c->board_ = std::make_unique<JobBoard>();

  ServiceDeps& deps = c->deps_;
  deps.store = c->store_.get();
  deps.metrics = c->metrics_.get();
  deps.board = c->board_.get();
  deps.lease_ttl = config.lease_ttl;
  deps.watch_poll_interval = config.watch_poll_interval;
  deps.max_jobs_per_sweep = config.max_jobs_per_sweep;
  deps.check_inputs = config.check_inputs;
  deps.stopping = &c->stopping_;
  deps.roots.model = config.model_roots;
  deps.roots.data = config.data_roots;
  c->coordinator_service_ = std::make_unique<CoordinatorService>(deps, config.client_token,
                                                                config.viewer_token);
  c->worker_service_ = std::make_unique<WorkerGatewayService>(deps, config.worker_token);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, credentials, &c->port_);
  builder.RegisterService(c->coordinator_service_.get());
  builder.RegisterService(c->worker_service_.get());
  c->server_ = builder.BuildAndStart();
  if (c->server_ == nullptr || c->port_ == 0) {
    if (c->server_) c->server_->Shutdown();
    return absl::UnavailableError(
        absl::StrCat("listen: cannot listen on '", config.listen, "' (in use or not local?)"));
  }
  // Stops what has started when a later part cannot; the destructor stops the rest.
  auto stop_servers = [raw = c.get()] {
    raw->server_->Shutdown();
    if (raw->health_server_) raw->health_server_->Shutdown();
  };

  if (!config.health_listen.empty()) {
    // Plaintext whatever `listen` uses, and only the default health service (enabled above):
    // no bitsweep service, no reflection, no tokens.
    grpc::ServerBuilder health_builder;
    health_builder.SetOption(std::make_unique<WithoutPlugins>());
    health_builder.AddListeningPort(config.health_listen, grpc::InsecureServerCredentials(),
                                    &c->health_port_);
    c->health_cq_ = health_builder.AddCompletionQueue();
    c->health_server_ = health_builder.BuildAndStart();
    c->health_cq_thread_ = std::thread([cq = c->health_cq_.get()] {
      void* tag = nullptr;
      bool ok = false;
      while (cq->Next(&tag, &ok)) {
      }
    });
    if (c->health_server_ == nullptr || c->health_port_ == 0 ||
        c->health_server_->GetHealthCheckService() == nullptr) {
      stop_servers();
      return absl::UnavailableError(absl::StrCat("health_listen: cannot listen on '",
                                                 config.health_listen, "' (in use or not local?)"));
    }
  }

  if (!config.metrics_listen.empty()) {
    auto metrics = MetricsHttp::Start(config.metrics_listen,
                                      {config.tls_cert, config.tls_key, config.tls_ca},
                                      {c->metrics_->registry(), c->metrics_->store_gauges()});
    if (!metrics.ok()) {
      stop_servers();
      return metrics.status();
    }
    c->metrics_http_ = std::move(metrics).value();
    c->metrics_port_ = c->metrics_http_->port();
  }
  if (!config.http_listen.empty()) {
    HttpApiOptions http;
    http.listen = config.http_listen;
    http.client_token = config.client_token;
    http.viewer_token = config.viewer_token;
    http.tls_cert = config.tls_cert;
    http.tls_key = config.tls_key;
    http.tls_ca = config.tls_ca;
    auto api = HttpApi::Start(http, deps);
    if (!api.ok()) {
      stop_servers();
      return api.status();
    }
    c->http_ = std::move(*api);
  }
  c->reaper_ = std::thread([raw = c.get()] { raw->ReapLoop(); });
  return c;
}

void Coordinator::ReapLoop() {
  // Workers heartbeat again within one TTL of this start (or of the database's return after an
  // outage); until then an expired deadline may only mean that they could not.
  LeaseGrace grace(config_.lease_ttl, deps_.now());
  while (!stop_reaper_.WaitForNotificationWithTimeout(config_.reaper_interval)) {
    auto expired = ReapOnce(*store_, grace, deps_.now());
    if (!expired.ok()) {
      std::fprintf(stderr, "bitsweep-coordinator: lease reaper: %s\n",
                   expired.status().ToString().c_str());
    } else {
      if (*expired > 0) metrics_->CountTransition(JobEvent::kExpire, static_cast<double>(*expired));
      // Early-abort decisions that a failure right after a result landed left undone (the
      // skipped jobs show in the early-abort metrics, which read the store).
      auto decided = store_->DecideHeldEarlyAborts(deps_.now());
      if (!decided.ok()) {
        std::fprintf(stderr, "bitsweep-coordinator: early abort: %s\n",
                     decided.status().ToString().c_str());
      }
    }
  }
}

void Coordinator::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_.HasBeenNotified()) return;
  stopping_.store(true);
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server != nullptr && server->GetHealthCheckService() != nullptr) {
      server->GetHealthCheckService()->Shutdown();  // health checks answer NOT_SERVING from now
    }
  }
  // gRPC 1.51 also waits out the deadline while clients keep idle connections open (workers
  // and watchers always do), so `grace` is in practice how long shutdown takes.
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoSeconds(grace));
  // Stopped after the main server, so probes read NOT_SERVING (not a refused connection) for
  // the whole grace period; a health check has nothing in flight worth waiting for.
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now());
  if (health_cq_) health_cq_->Shutdown();  // after its server's, as gRPC requires
  if (health_cq_thread_.joinable()) health_cq_thread_.join();
  if (!stop_reaper_.HasBeenNotified()) stop_reaper_.Notify();
  if (reaper_.joinable()) reaper_.join();
  if (metrics_http_) metrics_http_->Stop();
  if (http_) http_->Stop();
  shut_down_.Notify();
}

int Coordinator::http_port() const { return http_ ? http_->port() : 0; }

void Coordinator::Wait() { shut_down_.WaitForNotification(); }

Coordinator::~Coordinator() { Shutdown(); }

}  // namespace bitsweep::server
