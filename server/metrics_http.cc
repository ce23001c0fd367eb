#include "server/metrics_http.h"

#include <httplib.h>
#include <prometheus/text_serializer.h>

#include <utility>

namespace bitsweep::server {

StatusOr<std::unique_ptr<MetricsHttp>> MetricsHttp::Start(
    const std::string& listen, const HttpTlsFiles& tls,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  std::unique_ptr<MetricsHttp> m(new MetricsHttp());
  m->https_ = !tls.cert.empty();
  ASSIGN_OR_RETURN(m->server_, MakeHttpServer(tls, "metrics"));
  m->server_->Get("/metrics", [collectables = std::move(collectables)](
                                  const httplib::Request&, httplib::Response& res) {
    std::vector<prometheus::MetricFamily> families;
    for (const auto& c : collectables) {
      std::vector<prometheus::MetricFamily> some = c->Collect();
      families.insert(families.end(), std::make_move_iterator(some.begin()),
                      std::make_move_iterator(some.end()));
    }
    res.set_content(prometheus::TextSerializer().Serialize(families),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  ASSIGN_OR_RETURN(m->port_, BindHttpServer(*m->server_, listen, "metrics_listen"));
  m->thread_ = ServeHttp(*m->server_);
  return m;
}

void MetricsHttp::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

MetricsHttp::~MetricsHttp() { Stop(); }

}  // namespace bitsweep::server
