// The coordinator's Prometheus endpoint: GET /metrics (text format 0.0.4) over HTTP, or over
// HTTPS with the coordinator's certificate when TLS is configured (client certificates required
// when it requires them), on its own listener. It replaces prometheus-cpp's Exposer, whose
// civetweb server has no TLS here. Each scrape collects every registered collectable afresh.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "common/status.h"
#include "server/http_server.h"

namespace bitsweep::server {

class MetricsHttp {
 public:
  // Listens on `listen` ("host:port"; port 0 = a free one). UNAVAILABLE when it cannot be bound,
  // INVALID_ARGUMENT for a malformed address or unusable TLS files; both name metrics_listen.
  static StatusOr<std::unique_ptr<MetricsHttp>> Start(
      const std::string& listen, const HttpTlsFiles& tls,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  int port() const { return port_; }
  bool https() const { return https_; }
  // Stops accepting, finishes in-flight scrapes and joins the thread. Idempotent.
  void Stop();

 private:
  MetricsHttp() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  bool https_ = false;
};

}  // namespace bitsweep::server
