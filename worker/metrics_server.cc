// The worker's /metrics listener (worker/metrics.h): one poll loop over non-blocking sockets,
// plain or TLS. Every step of a connection (TLS handshake, reading the request, writing the
// response) either completes or says which readiness it waits for, so one slow peer only ever
// costs its own slot until its deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

// The oldest OpenSSL error on this thread, for a message; clears the queue.
std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "no detail from OpenSSL";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// "--flag 'path': why". A file that cannot be opened says so plainly rather than through
// OpenSSL's BIO error strings.
Status BadFile(const std::string& flag, const std::string& path, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " '", path, "': ", why));
}

Status Readable(const std::string& flag, const std::string& path) {
  if (std::ifstream(path).good()) return absl::OkStatus();
  return BadFile(flag, path, absl::StrCat("cannot be read (", std::strerror(errno), ")"));
}

// The server context for `tls`, or null for plain HTTP. Every file is loaded here, at start, so
// a bad one stops the worker with the flag named instead of failing each scrape.
StatusOr<SSL_CTX*> MakeContext(const MetricsTlsFiles& tls) {
  if (tls.cert.empty() && tls.key.empty() && tls.ca.empty()) return nullptr;
  if (tls.cert.empty() || tls.key.empty()) {
    return absl::InvalidArgumentError(
        "--metrics-tls-cert and --metrics-tls-key go together (HTTPS needs both; "
        "--metrics-tls-ca then also requires client certificates)");
  }
  RETURN_IF_ERROR(Readable("--metrics-tls-cert", tls.cert));
  RETURN_IF_ERROR(Readable("--metrics-tls-key", tls.key));
  if (!tls.ca.empty()) RETURN_IF_ERROR(Readable("--metrics-tls-ca", tls.ca));
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("metrics TLS: " + OpenSslError());
  auto fail = [&](const std::string& flag, const std::string& path, const std::string& what) {
    const std::string why = absl::StrCat(what, " (", OpenSslError(), ")");
    SSL_CTX_free(ctx);
    return BadFile(flag, path, why);
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A partial SSL_write resumes from wherever the response buffer now is.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Each scrape is one short connection: no session tickets to issue, no resumption to cache.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert.c_str()) != 1) {
    return fail("--metrics-tls-cert", tls.cert, "not a PEM certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return fail("--metrics-tls-key", tls.key, "not a PEM private key");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail("--metrics-tls-key", tls.key,
                absl::StrCat("does not match the certificate '", tls.cert, "'"));
  }
  if (!tls.ca.empty()) {
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.ca.c_str());
    if (names == nullptr || SSL_CTX_load_verify_locations(ctx, tls.ca.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return fail("--metrics-tls-ca", tls.ca, "not a PEM CA certificate");
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

using Clock = std::chrono::steady_clock;

// One open connection: TLS handshake (if any), reading its request head until the blank line (or
// 64 KiB), then writing its response; closed when done, on any error, or when its deadline
// passes.
struct Connection {
  int fd = -1;
  Clock::time_point deadline;
  SSL* ssl = nullptr;  // owned; null: plain HTTP
  bool handshaken = false;
  short events = POLLIN;  // the readiness the next step waits for
  std::string request;
  std::string response;  // non-empty: writing
  size_t sent = 0;
};

constexpr size_t kMaxRequest = 65536;

// After an SSL call returned `r` <= 0: true (keep the connection) when it only waits for the
// socket, with c.events set to the readiness it needs; false when the connection is over.
bool WaitForTls(Connection& c, int r) {
  switch (SSL_get_error(c.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      c.events = POLLIN;
      return true;
    case SSL_ERROR_WANT_WRITE:
      c.events = POLLOUT;
      return true;
    default:  // a failed handshake (no client certificate, plain HTTP), a reset, EOF
      ERR_clear_error();
      return false;
  }
}

// Plain socket: the same contract as WaitForTls after recv/send returned < 0.
bool WaitForSocket(Connection& c, short events) {
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
  c.events = events;
  return true;
}

}  // namespace

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Collectable> collectable,
    std::chrono::milliseconds request_deadline, const MetricsTlsFiles& tls) {
  const auto colon = address.rfind(':');
  int port = -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535 ||
      inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: '", address, "' is not an IPv4 host:port"));
  }
  ASSIGN_OR_RETURN(SSL_CTX * ctx, MakeContext(tls));
  a.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    SSL_CTX_free(ctx);
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot listen on '", address, "': ", why));
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(fd, ntohs(a.sin_port), std::move(collectable), request_deadline, ctx));
}

MetricsServer::MetricsServer(int fd, int port, std::shared_ptr<prometheus::Collectable> collectable,
                             std::chrono::milliseconds request_deadline, ssl_ctx_st* tls)
    : fd_(fd),
      port_(port),
      collectable_(std::move(collectable)),
      request_deadline_(request_deadline),
      tls_(tls) {
  thread_ = std::thread([this] { Serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
  SSL_CTX_free(tls_);
}

std::string MetricsServer::Respond(const std::string& request) const {
  std::string status = "200 OK", body;
  if (request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET /metrics?", 0) == 0) {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, collectable_->Collect());
    body = out.str();
  } else {
    status = "404 Not Found";
    body = "only GET /metrics is served here\n";
  }
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: text/plain; version=0.0.4\r\n",
                      "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

void MetricsServer::Serve() {
  // OpenSSL writes through write(2), not send(..., MSG_NOSIGNAL): a peer that resets mid-response
  // would raise SIGPIPE and kill the worker. Blocked on this thread, it becomes EPIPE instead.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  // Runs `c` as far as it can go without blocking; false when it is finished or failed.
  auto advance = [this](Connection& c) {
    if (c.ssl != nullptr && !c.handshaken) {
      ERR_clear_error();
      const int r = SSL_accept(c.ssl);
      if (r != 1) return WaitForTls(c, r);
      c.handshaken = true;
    }
    while (c.response.empty()) {
      char buf[4096];
      ssize_t n;
      if (c.ssl != nullptr) {
        ERR_clear_error();
        const int r = SSL_read(c.ssl, buf, sizeof(buf));
        if (r <= 0) return WaitForTls(c, r);
        n = r;
      } else {
        n = recv(c.fd, buf, sizeof(buf), 0);
        if (n == 0) return false;
        if (n < 0) return WaitForSocket(c, POLLIN);
      }
      c.request.append(buf, static_cast<size_t>(n));
      if (c.request.find("\r\n\r\n") != std::string::npos || c.request.size() >= kMaxRequest) {
        c.response = Respond(c.request);
      }
    }
    while (c.sent < c.response.size()) {
      const char* data = c.response.data() + c.sent;
      const size_t left = c.response.size() - c.sent;
      if (c.ssl != nullptr) {
        ERR_clear_error();
        const int r = SSL_write(c.ssl, data, static_cast<int>(std::min<size_t>(left, 1 << 20)));
        if (r <= 0) return WaitForTls(c, r);
        c.sent += static_cast<size_t>(r);
      } else {
        const ssize_t n = send(c.fd, data, left, MSG_NOSIGNAL);
        if (n < 0) return WaitForSocket(c, POLLOUT);
        c.sent += static_cast<size_t>(n);
      }
    }
    // The response carries Content-Length; close_notify is a courtesy, sent once, not awaited.
    if (c.ssl != nullptr) SSL_shutdown(c.ssl);
    return false;
  };

  std::vector<Connection> open;
  auto close_at = [&](size_t i) {
    SSL_free(open[i].ssl);
    close(open[i].fd);
    open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
  };
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({fd_, POLLIN, 0});
    for (const Connection& c : open) fds.push_back({c.fd, c.events, 0});
    int timeout_ms = 200;  // also how soon a stop is noticed
    const Clock::time_point now = Clock::now();
    for (const Connection& c : open) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now);
      timeout_ms = std::max(0, std::min(timeout_ms, static_cast<int>(left.count()) + 1));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) break;
    // Existing connections first (fds[k + 1] is open[k] as polled; new ones are appended after).
    const size_t polled = open.size();
    std::vector<bool> done(polled, false);
    for (size_t k = 0; k < polled; ++k) {
      const short revents = fds[k + 1].revents;
      if (revents == 0) continue;
      // POLLHUP/POLLERR still go through a read or write, which then reports the end.
      done[k] = (revents & POLLNVAL) != 0 || !advance(open[k]);
    }
    const Clock::time_point after = Clock::now();
    for (size_t k = polled; k-- > 0;) {
      if (done[k] || open[k].deadline <= after) close_at(k);
    }
    if (fds[0].revents & POLLIN) {
      for (;;) {
        const int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        if (open.size() >= static_cast<size_t>(kMaxConnections)) close_at(0);  // the oldest
        Connection c;
        c.fd = fd;
        c.deadline = Clock::now() + request_deadline_;
        if (tls_ != nullptr) {
          c.ssl = SSL_new(tls_);
          if (c.ssl == nullptr || SSL_set_fd(c.ssl, fd) != 1) {
            ERR_clear_error();
            SSL_free(c.ssl);
            close(fd);
            continue;
          }
        }
        open.push_back(std::move(c));
      }
    }
  }
  for (Connection& c : open) {
    SSL_free(c.ssl);
    close(c.fd);
  }
}

}  // namespace bitsweep::worker
