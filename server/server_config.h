// ServerConfig: everything the coordinator needs to start, with documented defaults (STYLE.md P8).
// main.cc fills it from flags and the environment; tests fill it directly. Plain value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/status.h"

namespace bitsweep::server {

struct ServerConfig {
  // gRPC listen address "host:port"; port 0 picks a free one (Coordinator::port() tells which).
  // Default loopback only: a non-loopback host needs TLS and both tokens, or
  // insecure_allow_remote.
  std::string listen = "127.0.0.1:50051";
  // libpq conninfo of the job database (PG* environment variables apply). Required.
  std::string db;
  // Most PostgreSQL connections the coordinator holds at once; RPCs beyond it wait their turn
  // (first come, first served). Each runs a backend process, so more than a few per core only
  // adds context switches (bench/scheduler measures the choice). Default 16.
  int db_connections = 16;
  // Prometheus /metrics listen address ("host:port", port 0 = a free one); "" = no exposer.
  std::string metrics_listen = "127.0.0.1:9464";
  // Dashboard and its JSON API over HTTP ("host:port", port 0 = a free one); "" = off (the
  // bitsweep-coordinator binary defaults to 127.0.0.1:8080). Same rules as `listen`: a
  // non-loopback host needs TLS (served as HTTPS with tls_cert/tls_key) and client_token, or
  // insecure_allow_remote. The API takes client_token, as the Coordinator RPCs do.
  std::string http_listen;
  // Plaintext gRPC address ("host:port", port 0 = a free one) of a second server in the process
  // serving only grpc.health.v1.Health (no bitsweep service, no reflection, no tokens), with the
  // status of the main server's: SERVING while the coordinator serves, NOT_SERVING from the
  // moment Shutdown begins. For probes that cannot speak TLS (the kubelet's gRPC probes) when
  // `listen` has TLS. "" = off. It may be non-loopback without TLS, tokens or
  // insecure_allow_remote: a health answer carries no data. Its port must differ from the fixed
  // ports of listen, metrics_listen and http_listen.
  std::string health_listen;
  // Most jobs one sweep may ask for: SubmitSweep refuses a larger grid (common/sweep.h
  // SweepGridSize) with INVALID_ARGUMENT naming both numbers, before building any job. >= 1.
  int64_t max_jobs_per_sweep = 100000;
  // Lease time-to-live: a job whose worker sent no heartbeat for this long is retried.
  absl::Duration lease_ttl = absl::Seconds(60);
  // How often the lease reaper calls JobStore::ExpireLeases(now). It expires nothing for one
  // lease_ttl after the coordinator starts and after the database comes back from an outage
  // (server/lease_reaper.h), so that workers can heartbeat first.
  absl::Duration reaper_interval = absl::Seconds(2);
  // How often WatchSweep polls the store for changed counts.
  absl::Duration watch_poll_interval = absl::Milliseconds(500);
  // Bearer tokens: when non-empty, Coordinator RPCs need "authorization: Bearer <client_token>"
  // and WorkerGateway RPCs "authorization: Bearer <worker_token>" (UNAUTHENTICATED otherwise).
  // Each may list several tokens separated by commas ("old,new"), any of which is accepted, so
  // a token can be rotated without a moment where clients or workers are refused.
  std::string client_token;
  std::string worker_token;
  // PEM files. cert and key together enable TLS; ca additionally requires and verifies client
  // certificates (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // Allows listening on a non-loopback address without TLS and tokens (trusted networks only).
  bool insecure_allow_remote = false;

  bool tls() const { return !tls_cert.empty(); }
  // Whether `listen` names a loopback host (127.x.x.x, ::1, localhost).
  bool ListensOnLoopbackOnly() const;
  // INVALID_ARGUMENT naming the field: empty db, bad address, TLS half-configured, a remote
  // address without TLS and tokens (unless insecure_allow_remote; for http_listen TLS and the
  // client token; never for health_listen), health_listen on the port of another listen address
  // (both fixed, i.e. not 0), non-positive durations, a token list with an empty entry or
  // whitespace.
  Status Validate() const;
};

// The tokens of a comma-separated list ("a,b" -> {"a", "b"}; "" -> {}). Entries are kept as
// written; ServerConfig::Validate rejects empty ones and whitespace.
std::vector<std::string> SplitTokenList(const std::string& tokens);

// Whether the host part of "host:port" ("[::1]:50051", "localhost:1") is a loopback address.
bool IsLoopbackAddress(const std::string& host_port);

}  // namespace bitsweep::server
