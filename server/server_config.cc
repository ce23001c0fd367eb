#include "server/server_config.h"

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/address.h"

namespace bitsweep::server {
namespace {

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

// No token may serve two roles: a client token that is also a worker token lets every client
// complete or fail jobs (and every worker submit and cancel), and a viewer token that is also a
// client token is no read-only role.
Status CheckDistinctRoles(
    const std::vector<std::pair<const char*, const std::string*>>& roles) {
  for (std::size_t i = 0; i < roles.size(); ++i) {
    for (std::size_t j = i + 1; j < roles.size(); ++j) {
      for (const std::string& a : SplitTokenList(*roles[i].second)) {
        for (const std::string& b : SplitTokenList(*roles[j].second)) {
          if (a != b) continue;
          return absl::InvalidArgumentError(absl::StrCat(
              roles[i].first, ", ", roles[j].first,
              ": the same token is listed for both roles; give each role its own token"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> SplitTokenList(const std::string& tokens) {
  if (tokens.empty()) return {};
  return absl::StrSplit(tokens, ',');
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
  RETURN_IF_ERROR(CheckTokenList("viewer_token", viewer_token));
  if (!viewer_token.empty() && client_token.empty()) {
    return absl::InvalidArgumentError(
        "viewer_token: needs client_token too (without it every Coordinator RPC is open)");
  }
  RETURN_IF_ERROR(CheckDistinctRoles({{"client_token", &client_token},
                                      {"worker_token", &worker_token},
                                      {"viewer_token", &viewer_token}}));
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("tls_cert, tls_key: give both or neither");
  }
  if (!tls_ca.empty() && tls_cert.empty()) {
    return absl::InvalidArgumentError("tls_ca: mutual TLS needs tls_cert and tls_key too");
  }
  // insecure_allow_remote waives TLS, never the tokens.
  if (!ListensOnLoopbackOnly() && (client_token.empty() || worker_token.empty())) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen: '", listen,
                     "' is not a loopback address; remote listening needs both client_token and "
                     "worker_token (insecure_allow_remote waives only TLS)"));
  }
  if (!ListensOnLoopbackOnly() && !insecure_allow_remote && !tls()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen: '", listen,
        "' is not a loopback address; remote listening needs TLS (tls_cert, tls_key), or "
        "insecure_allow_remote on a trusted network"));
  }
  if (!http_listen.empty() && !IsLoopbackAddress(http_listen) && client_token.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: '", http_listen,
                     "' is not a loopback address; a remote dashboard needs client_token "
                     "(insecure_allow_remote waives only TLS)"));
  }
  if (!http_listen.empty() && !IsLoopbackAddress(http_listen) && !insecure_allow_remote &&
      !tls()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "http_listen: '", http_listen,
        "' is not a loopback address; a remote dashboard needs TLS (tls_cert, tls_key), or "
        "insecure_allow_remote on a trusted network"));
  }
  // /metrics takes no token (it carries counts, never ids or paths), but the same TLS rule.
  if (!metrics_listen.empty() && !IsLoopbackAddress(metrics_listen) && !insecure_allow_remote &&
      !tls()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics_listen: '", metrics_listen,
        "' is not a loopback address; remote /metrics needs TLS (tls_cert, tls_key: it is then "
        "served as HTTPS), or insecure_allow_remote on a trusted network"));
  }
  return absl::OkStatus();
}

}  // namespace bitsweep::server
