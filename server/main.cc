// bitsweep-coordinator: flags -> ServerConfig, then Coordinator::Start, then wait for SIGTERM or
// SIGINT and shut down gracefully (in-flight RPCs get a few seconds to finish).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "server/coordinator.h"
#include "server/server_config.h"

namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  using bitsweep::server::ServerConfig;
  ServerConfig config;
  config.http_listen = "127.0.0.1:8080";
  double lease_ttl_s = 60;
  CLI::App app{"bitsweep-coordinator: schedules sweep jobs on workers over gRPC"};
  app.add_option("--listen", config.listen,
                 "gRPC address host:port; a non-loopback host needs both tokens, and TLS unless "
                 "--insecure-allow-remote")
      ->capture_default_str();
  app.add_option("--db", config.db,
                 "libpq conninfo of the job database (PG* environment variables apply)")
      ->required();
  app.add_option("--metrics-listen", config.metrics_listen,
                 "Prometheus /metrics address host:port (\"\" disables it); HTTPS with "
                 "--tls-cert/--tls-key, else plain HTTP; a non-loopback host needs TLS unless "
                 "--insecure-allow-remote")
      ->capture_default_str();
  app.add_option("--http-listen", config.http_listen,
                 "web dashboard and JSON API address host:port (\"\" disables it); a "
                 "non-loopback host needs --client-token, and TLS unless --insecure-allow-remote")
      ->capture_default_str();
  app.add_option("--health-listen", config.health_listen,
                 "plaintext gRPC address host:port serving only grpc.health.v1 (for probes that "
                 "cannot speak TLS, e.g. the kubelet's); no TLS or tokens needed even when "
                 "non-loopback, as health answers carry no data (default \"\": off)")
      ->capture_default_str();
  app.add_option("--db-connections", config.db_connections,
                 "most PostgreSQL connections held at once (RPCs beyond it queue)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-jobs-per-sweep", config.max_jobs_per_sweep,
                 "most jobs one sweep's grid may ask for (models x configurations x tasks, "
                 "counted before expanding); SubmitSweep refuses a larger one")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bool no_input_checks = false;
  app.add_flag("--no-input-checks", no_input_checks,
               "do not check at submit time that the sweep's model folders (config.json, "
               "*.safetensors, tokenizer.json), task and calibration files exist: for a "
               "coordinator that cannot see the workers' files");
  app.add_option("--lease-ttl", lease_ttl_s, "lease time-to-live in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--client-token", config.client_token,
                 "bearer token Coordinator RPCs must carry; several separated by commas are "
                 "each accepted, for rotation (env BITSWEEP_CLIENT_TOKEN)");
  app.add_option("--worker-token", config.worker_token,
                 "bearer token WorkerGateway RPCs must carry; several separated by commas are "
                 "each accepted, for rotation (env BITSWEEP_WORKER_TOKEN); must differ from every "
                 "client token");
  app.add_option("--viewer-token", config.viewer_token,
                 "read-only bearer token: accepted by the read RPCs (GetSweep, ListSweeps, "
                 "ListJobs, WatchSweep, QueryResults, DescribeJob, GetJobLog) and the dashboard "
                 "API, refused by SubmitSweep and the cancels; needs --client-token (env "
                 "BITSWEEP_VIEWER_TOKEN)");
  app.add_option("--tls-cert", config.tls_cert, "server certificate chain (PEM); enables TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", config.tls_key, "server private key (PEM)")->check(CLI::ExistingFile);
  app.add_option("--tls-ca", config.tls_ca,
                 "CA bundle (PEM) for client certificates: requires mutual TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--model-root", config.model_roots,
                 "folder the model paths of submitted sweeps must lie in, symbolic links "
                 "resolved (repeatable; none: not confined)");
  app.add_option("--data-root", config.data_roots,
                 "folder the .jsonl tasks and calibration files of submitted sweeps must lie in "
                 "(repeatable; none: not confined)");
  app.add_flag("--insecure-allow-remote", config.insecure_allow_remote,
               "allow a non-loopback --listen or --http-listen without TLS, and a non-loopback "
               "--metrics-listen (plain HTTP always) (trusted networks only); the tokens are "
               "still required");
  CLI11_PARSE(app, argc, argv);
  config.lease_ttl = absl::Seconds(lease_ttl_s);
  config.check_inputs = !no_input_checks;
  if (config.client_token.empty()) config.client_token = EnvOr("BITSWEEP_CLIENT_TOKEN", "");
  if (config.worker_token.empty()) config.worker_token = EnvOr("BITSWEEP_WORKER_TOKEN", "");
  if (config.viewer_token.empty()) config.viewer_token = EnvOr("BITSWEEP_VIEWER_TOKEN", "");

  // Block the signals before any thread starts, so every thread inherits the mask and only
  // sigwait below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto coordinator = bitsweep::server::Coordinator::Start(config);
  if (!coordinator.ok()) {
    std::fprintf(stderr, "bitsweep-coordinator: %s\n", coordinator.status().ToString().c_str());
    return 1;
  }
  const auto& c = **coordinator;
  std::fprintf(
      stderr,
      "bitsweep-coordinator: gRPC on %s (port %d)%s, tls=%s%s, client auth=%s, worker "
      "auth=%s, viewer auth=%s, lease ttl %gs, metrics %s, dashboard %s, health %s\n",
      config.listen.c_str(), c.port(), config.ListensOnLoopbackOnly() ? " -- loopback only" : "",
      config.tls() ? "on" : "off", config.tls_ca.empty() ? "" : " (mutual)",
      config.client_token.empty() ? "off" : "bearer token",
      config.worker_token.empty() ? "off" : "bearer token",
      config.viewer_token.empty() ? "off" : "bearer token", lease_ttl_s,
      config.metrics_listen.empty() ? "off"
                                    : (std::string(config.tls() ? "https://" : "http://") +
                                       config.metrics_listen + "/metrics (port " +
                                       std::to_string(c.metrics_port()) + ")")
                                          .c_str(),
      config.http_listen.empty()
          ? "off"
          : (std::string(config.tls() ? "https://" : "http://") + config.http_listen + "/ (port " +
             std::to_string(c.http_port()) + ")")
                .c_str(),
      config.health_listen.empty() ? "off"
                                   : ("plaintext " + config.health_listen + " (port " +
                                      std::to_string(c.health_port()) + ")")
                                         .c_str());

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::fprintf(stderr, "bitsweep-coordinator: %s, shutting down\n",
               signal_number == SIGTERM ? "SIGTERM" : "SIGINT");
  (*coordinator)->Shutdown();
  return 0;
}
