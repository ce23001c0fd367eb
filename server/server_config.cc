#include "server/server_config.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bitsweep::server {
namespace {

// Splits "host:port" / "[v6]:port"; false when there is no port.
bool SplitHostPort(const std::string& host_port, std::string* host, std::string* port) {
  const auto colon = host_port.rfind(':');
  if (colon == std::string::npos || colon + 1 >= host_port.size()) return false;
  *host = host_port.substr(0, colon);
  *port = host_port.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  return true;
}

Status CheckAddress(const std::string& field, const std::string& host_port) {
  std::string host, port;
  int port_number = 0;
  if (!SplitHostPort(host_port, &host, &port) || host.empty() ||
      !absl::SimpleAtoi(port, &port_number) || port_number < 0 || port_number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", host_port, "' is not host:port (e.g. 127.0.0.1:50051)"));
  }
  return absl::OkStatus();
}

// The port of a "host:port" that CheckAddress accepted; 0 when it asks for a free one.
int PortOf(const std::string& host_port) {
  std::string host, port;
  int port_number = 0;
  if (!SplitHostPort(host_port, &host, &port) || !absl::SimpleAtoi(port, &port_number)) return 0;
  return port_number;
}

Status CheckTokenList(const std::string& field, const std::string& tokens) {
  if (tokens.empty()) return absl::OkStatus();
  for (const std::string& token : SplitTokenList(tokens)) {
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": an entry of the comma-separated token list is empty"));
    }
    if (token.find_first_of(" \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": a token contains whitespace (a stray newline from a file?)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> SplitTokenList(const std::string& tokens) {
  if (tokens.empty()) return {};
  return absl::StrSplit(tokens, ',');
}

bool IsLoopbackAddress(const std::string& host_port) {
  std::string host, port;
  if (!SplitHostPort(host_port, &host, &port)) return false;
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

bool ServerConfig::ListensOnLoopbackOnly() const { return IsLoopbackAddress(listen); }

Status ServerConfig::Validate() const {
  RETURN_IF_ERROR(CheckAddress("listen", listen));
  if (!metrics_listen.empty()) RETURN_IF_ERROR(CheckAddress("metrics_listen", metrics_listen));
  if (!http_listen.empty()) RETURN_IF_ERROR(CheckAddress("http_listen", http_listen));
  if (!health_listen.empty()) {
    RETURN_IF_ERROR(CheckAddress("health_listen", health_listen));
    // No TLS or token rule: the health server answers only grpc.health.v1, which carries no data.
    const int health_port = PortOf(health_listen);
    for (const auto& [field, address] :
         {std::pair<const char*, const std::string*>{"listen", &listen},
          {"metrics_listen", &metrics_listen},
          {"http_listen", &http_listen}}) {
      if (health_port != 0 && !address->empty() && PortOf(*address) == health_port) {
        return absl::InvalidArgumentError(absl::StrCat("health_listen: '", health_listen,
                                                       "' uses the port of ", field, " ('",
                                                       *address, "')"));
      }
    }
  }
  if (db.empty()) return absl::InvalidArgumentError("db: the libpq conninfo is empty");
  if (db_connections < 1) return absl::InvalidArgumentError("db_connections: must be >= 1");
  if (max_jobs_per_sweep < 1) {
    return absl::InvalidArgumentError("max_jobs_per_sweep: must be >= 1");
  }
  if (lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("lease_ttl: must be positive");
  }
  if (reaper_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("reaper_interval: must be positive");
  }
  if (watch_poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("watch_poll_interval: must be positive");
  }
  RETURN_IF_ERROR(CheckTokenList("client_token", client_token));
  RETURN_IF_ERROR(CheckTokenList("worker_token", worker_token));
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("tls_cert, tls_key: give both or neither");
  }
  if (!tls_ca.empty() && tls_cert.empty()) {
    return absl::InvalidArgumentError("tls_ca: mutual TLS needs tls_cert and tls_key too");
  }
  if (!ListensOnLoopbackOnly() && !insecure_allow_remote &&
      (!tls() || client_token.empty() || worker_token.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen: '", listen,
        "' is not a loopback address; remote listening needs TLS (tls_cert, tls_key) and both "
        "client_token and worker_token, or insecure_allow_remote"));
  }
  if (!http_listen.empty() && !IsLoopbackAddress(http_listen) && !insecure_allow_remote &&
      (!tls() || client_token.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_listen: '", http_listen,
        "' is not a loopback address; a remote dashboard needs TLS (tls_cert, tls_key) and "
        "client_token, or insecure_allow_remote"));
  }
  return absl::OkStatus();
}

}  // namespace bitsweep::server
