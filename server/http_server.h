// The coordinator's two HTTP listeners (the dashboard's API, server/http_api.h, and /metrics,
// server/metrics_http.h) start their cpp-httplib servers the same way: HTTPS when a certificate
// and key are given (client certificates required and verified when a CA is given too), bound
// to "host:port" before its accept loop runs, so the port is known and connections queue.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace bitsweep::server {

struct HttpTlsFiles {
  std::string cert, key, ca;  // PEM files; cert + key enable HTTPS; ca: mutual TLS
};

// A plain or TLS server. INVALID_ARGUMENT naming `field` when the TLS files cannot be used.
StatusOr<std::unique_ptr<httplib::Server>> MakeHttpServer(const HttpTlsFiles& tls,
                                                          const std::string& field);

// Binds `server` to `listen` ("host:port", "[v6]:port"; port 0 = a free one) and returns the
// port. INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be bound; both
// name `field`.
StatusOr<int> BindHttpServer(httplib::Server& server, const std::string& listen,
                             const std::string& field);

// Runs the accept loop of a bound server on a new thread.
std::thread ServeHttp(httplib::Server& server);

}  // namespace bitsweep::server
