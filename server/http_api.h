// HttpApi: the coordinator's web dashboard over HTTP(S): the page and its assets (embedded,
// dashboard/assets.h) and a read-only JSON API over the same JobStore queries the gRPC
// Coordinator service uses. Started and owned by Coordinator (config.http_listen).
//
//   GET /                      the dashboard page (also /index.html)
//   GET /assets/NAME           its scripts and styles
//   GET /api/sweeps            {"sweeps": [sweep], "next_page_token"}, newest first
//   GET /api/sweeps/ID         {"sweep": sweep, "jobs": [job], "next_page_token"}, jobs by id
//   GET /api/results[?sweep=ID] {"jobs": [job results], "next_page_token"}, by job id
//   GET /api/results/table[?sweep=ID] {"table": ResultsTableToJson} of every result (headline
//                              metrics only are read into it, a page of jobs at a time)
//   GET /api/jobs/ID           {"job": job, "events": [event], "results": [row]}
//   Listings are paged as the gRPC ones (server/paging.h): ?page_size=N (0 = 100, at most
//   1000, and never more than 512 KiB of items) and ?page_token=<the previous next_page_token>;
//   next_page_token is "" on the last page.
//   sweep: id, name, priority, created_at (unix s), state (ACTIVE|CANCELED), pending, leased,
//          succeeded, failed, canceled, total, finished (as the gRPC Sweep message)
//   job:   id, sweep_id, job_key, state, attempt, max_attempts, priority, worker, error,
//          progress, phase, model, quantization, method, wbits, abits, group, task, spec
//   job results: job_id, job_key, spec, provenance (once per job), metrics: [{metric, value,
//          stderr, n}] (a diverged job: its one metric, value null)
//
// With a client token configured every /api/ request needs "Authorization: Bearer <token>"
// (401 otherwise), a client or viewer token of the gRPC Coordinator service (the API only
// reads); the page and its assets are
// public (they hold no data). Errors are {"error": message} with 400/404/503/500.
// With TLS configured it serves HTTPS with the gRPC server's certificate and key (and requires
// client certificates when a CA is given). Thread-safe; requests run on the server's pool.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "server/service_deps.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace bitsweep::server {

struct HttpApiOptions {
  std::string listen;  // "host:port"; port 0 = a free one
  std::string client_token;
  std::string viewer_token;  // accepted as well as client_token (the API only reads)
  std::string tls_cert, tls_key, tls_ca;  // PEM files; cert+key enable HTTPS
};

class HttpApi {
 public:
  // UNAVAILABLE when the address cannot be bound, INVALID_ARGUMENT for unusable TLS files.
  // `deps` (store, board, metrics) must outlive the HttpApi.
  static StatusOr<std::unique_ptr<HttpApi>> Start(const HttpApiOptions& options,
                                                  const ServiceDeps& deps);
  ~HttpApi();
  HttpApi(const HttpApi&) = delete;
  HttpApi& operator=(const HttpApi&) = delete;

  // The bound port.
  int port() const { return port_; }
  // Stops accepting, finishes in-flight requests and joins the server thread. Idempotent.
  void Stop();

 private:
  HttpApi() = default;
  void Route();

  ServiceDeps deps_;
  std::vector<std::string> tokens_;  // empty: no authentication
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace bitsweep::server
