// ServerConfig: everything the coordinator needs to start, each setting with a documented
// default, so a coordinator started with no flags is a working one.
// main.cc fills it from flags and the environment; tests fill it directly. Plain value type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/address.h"
#include "common/status.h"

namespace bitsweep::server {

struct ServerConfig {
  // gRPC listen address "host:port"; port 0 picks a free one (Coordinator::port() tells which).
  // Default loopback only: a non-loopback host needs both tokens, and TLS unless
  // insecure_allow_remote.
  std::string listen = "127.0.0.1:50051";
  // libpq conninfo of the job database (PG* environment variables apply). Required.
  std::string db;
  // Most PostgreSQL connections the coordinator holds at once; RPCs beyond it wait their turn
  // (first come, first served). Each runs a backend process, so more than a few per core only
  // adds context switches (bench/scheduler measures the choice). Default 16.
  int db_connections = 16;
  // Prometheus /metrics listen address ("host:port", port 0 = a free one); "" = off. No token
  // (it exports counts, never ids or paths). HTTPS with tls_cert/tls_key when TLS is on (client
  // certificates required with tls_ca), else plain HTTP; a non-loopback host needs TLS unless
  // insecure_allow_remote, as `listen` and http_listen do.
  std::string metrics_listen = "127.0.0.1:9464";
  // Dashboard and its JSON API over HTTP ("host:port", port 0 = a free one); "" = off (the
  // bitsweep-coordinator binary defaults to 127.0.0.1:8080). Same rules as `listen`: a
  // non-loopback host needs client_token, and TLS (served as HTTPS with tls_cert/tls_key) unless
  // insecure_allow_remote. The API (read-only) takes client_token or viewer_token.
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
  // SubmitSweep checks that what the sweep's jobs read is there (common/sweep_inputs.h: each
  // model folder's config.json, *.safetensors and tokenizer.json, each .jsonl task and
  // calibration file) and refuses with the list of problems before storing anything. Named
  // tasks' data lives with the workers and is not checked here. false: for a coordinator that
  // does not see the workers' model folders.
  bool check_inputs = true;
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
  // Read-only role: the Coordinator read RPCs (GetSweep, ListSweeps, ListJobs, WatchSweep,
  // QueryResults, DescribeJob, GetJobLog) and the dashboard's API accept it as well as
  // client_token; SubmitSweep, CancelSweep and CancelJob refuse it (PERMISSION_DENIED). Needs
  // client_token. "" = none.
  std::string viewer_token;
  // PEM files. cert and key together enable TLS; ca additionally requires and verifies client
  // certificates (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // Where the paths of a submitted sweep may lead (common/path_roots.h): model folders under one
  // of model_roots, .jsonl tasks and calibration files under one of data_roots, each resolved
  // with its symbolic links; a sweep naming anything else is refused (INVALID_ARGUMENT, the
  // same words whether the path exists or not) before any file is opened. Empty: not confined.
  std::vector<std::string> model_roots;
  std::vector<std::string> data_roots;
  // Allows listening on a non-loopback address without TLS (trusted networks only): `listen`,
  // http_listen and metrics_listen when TLS is off. It never waives the tokens.
  bool insecure_allow_remote = false;

  bool tls() const { return !tls_cert.empty(); }
  // Whether `listen` names a loopback host (127.0.0.0/8, ::1, ::ffff:127.x.x.x, localhost).
  bool ListensOnLoopbackOnly() const;
  // INVALID_ARGUMENT naming the field: empty db, bad address, TLS half-configured, a remote
  // `listen` without both tokens or without TLS (TLS waived by insecure_allow_remote), a remote
  // http_listen without client_token or without TLS (likewise), a remote metrics_listen
  // without TLS (likewise), health_listen on the port of
  // another listen address (both fixed, i.e. not 0), non-positive durations, a token list with
  // an empty entry or whitespace, viewer_token without client_token, and one token in two roles
  // (client, worker, viewer).
  Status Validate() const;
};

// The tokens of a comma-separated list ("a,b" -> {"a", "b"}; "" -> {}). Entries are kept as
// written; ServerConfig::Validate rejects empty ones and whitespace.
std::vector<std::string> SplitTokenList(const std::string& tokens);

// common/address.h, here for the coordinator's callers.
using ::bitsweep::IsLoopbackAddress;

}  // namespace bitsweep::server
