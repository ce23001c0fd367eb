#include "server/http_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bitsweep::server {

StatusOr<std::unique_ptr<httplib::Server>> MakeHttpServer(const HttpTlsFiles& tls,
                                                          const std::string& field) {
  std::unique_ptr<httplib::Server> server;
  if (!tls.cert.empty()) {
    server = std::make_unique<httplib::SSLServer>(tls.cert.c_str(), tls.key.c_str(),
                                                  tls.ca.empty() ? nullptr : tls.ca.c_str());
  } else {
    server = std::make_unique<httplib::Server>();
  }
  if (!server->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("tls_cert, tls_key: the ", field,
                                                   " server cannot use '", tls.cert, "' and '",
                                                   tls.key, "'"));
  }
  return server;
}

StatusOr<int> BindHttpServer(httplib::Server& server, const std::string& listen,
                             const std::string& field) {
  const auto colon = listen.rfind(':');
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", listen, "' is not host:port"));
  }
  int bound = 0;
  if (port == 0) {
    bound = server.bind_to_any_port(host);
  } else if (server.bind_to_port(host, port)) {
    bound = port;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat(field, ": cannot listen on '", listen, "' (in use?)"));
  }
  return bound;
}

std::thread ServeHttp(httplib::Server& server) {
  return std::thread([&server] { server.listen_after_bind(); });
}

}  // namespace bitsweep::server
