// The worker's /metrics over HTTPS (worker/metrics.h), with real sockets and certificates made by
// the openssl tool: it serves verifying clients, enforces client certificates when given a CA,
// gives plain HTTP nothing, keeps its per-connection deadline through the TLS handshake, and
// refuses unusable files at start, naming the flag.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <string>

#include "tests/testing/certs.h"
#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/socket.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A fresh directory with the test CA, server and client certificates (tests/testing/certs.h).
std::string Certificates(const std::string& name) {
  const std::string dir = testing::ScratchDir(name);
  const bool made = testing::MakeCertificates(dir);
  INFO(Slurp(dir + "/openssl.log"));
  REQUIRE(made);
  return dir;
}

MetricsTlsFiles ServerFiles(const std::string& dir, bool require_client_cert) {
  return {dir + "/server.pem", dir + "/server.key", require_client_cert ? dir + "/ca.pem" : ""};
}

// GET /metrics over TLS to 127.0.0.1:port, verifying the server as "localhost" against
// dir/ca.pem, presenting dir/client.pem when `client_cert`; the whole response, or "" when the
// handshake or the exchange fails or takes longer than `timeout`.
std::string HttpsGet(int port, const std::string& dir, bool client_cert,
                     milliseconds timeout = milliseconds(3000)) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx != nullptr);
  REQUIRE(SSL_CTX_load_verify_locations(ctx, (dir + "/ca.pem").c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (client_cert) {
    REQUIRE(SSL_CTX_use_certificate_file(ctx, (dir + "/client.pem").c_str(), SSL_FILETYPE_PEM) ==
            1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, (dir + "/client.key").c_str(), SSL_FILETYPE_PEM) == 1);
  }
  const int fd = testing::ConnectLoopback(port);
  timeval tv{timeout.count() / 1000, static_cast<long>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, "localhost");
  X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), "localhost", 0);
  std::string response;
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  if (SSL_connect(ssl) == 1 && SSL_write(ssl, request.data(), static_cast<int>(request.size())) ==
                                   static_cast<int>(request.size())) {
    char buf[4096];
    for (int n; (n = SSL_read(ssl, buf, sizeof(buf))) > 0;) response.append(buf, n);
  }
  ERR_clear_error();
  SSL_free(ssl);
  ::close(fd);
  SSL_CTX_free(ctx);
  return response;
}

bool HasExposition(const std::string& response) {
  return response.rfind("HTTP/1.1 200 OK", 0) == 0 &&
         response.find("bitsweep_worker_info{version=\"") != std::string::npos;
}

// Whether the server has closed `fd` (recv answers 0 or an error), without blocking.
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

std::unique_ptr<MetricsServer> StartTls(const WorkerMetrics& metrics, const MetricsTlsFiles& tls,
                                        milliseconds deadline = milliseconds(5000)) {
  auto server = MetricsServer::Start("127.0.0.1:0", metrics.registry(), deadline, tls);
  INFO(server.status().ToString());
  REQUIRE(server.ok());
  REQUIRE(server.value()->https());
  return std::move(server).value();
}

TEST_CASE(
    "given a certificate the worker's /metrics serves the exposition over HTTPS to a "
    "client that verifies it") {
  const std::string dir = Certificates("metrics_tls_https");
  WorkerMetrics metrics(kWorkerVersion);
  auto server = StartTls(metrics, ServerFiles(dir, false));
  const std::string answer = HttpsGet(server->port(), dir, /*client_cert=*/false);
  INFO(answer.substr(0, 200));
  CHECK(HasExposition(answer));
}

TEST_CASE(
    "given a CA the worker's /metrics refuses a client without a certificate and serves "
    "one whose certificate the CA signed") {
  const std::string dir = Certificates("metrics_tls_mutual");
  WorkerMetrics metrics(kWorkerVersion);
  auto server = StartTls(metrics, ServerFiles(dir, true));
  const std::string refused = HttpsGet(server->port(), dir, /*client_cert=*/false);
  CHECK(refused.find("bitsweep_worker") == std::string::npos);
  const std::string answer = HttpsGet(server->port(), dir, /*client_cert=*/true);
  INFO(answer.substr(0, 200));
  CHECK(HasExposition(answer));
}

TEST_CASE("plain HTTP to the worker's HTTPS /metrics gets no metrics") {
  const std::string dir = Certificates("metrics_tls_plain");
  WorkerMetrics metrics(kWorkerVersion);
  auto server = StartTls(metrics, ServerFiles(dir, false));
  const int fd = testing::ConnectLoopback(server->port());
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  timeval tv{3, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  ::close(fd);
  CHECK(response.find("bitsweep_worker") == std::string::npos);
  CHECK(response.find("HTTP/1.1 200") == std::string::npos);
  // And the server still serves HTTPS afterwards.
  CHECK(HasExposition(HttpsGet(server->port(), dir, false)));
}

TEST_CASE(
    "a TLS client stalled halfway through its ClientHello neither delays a concurrent "
    "HTTPS scrape nor outlives the whole-request deadline") {
  const std::string dir = Certificates("metrics_tls_slow");
  WorkerMetrics metrics(kWorkerVersion);
  const milliseconds deadline(1500);
  auto server = StartTls(metrics, ServerFiles(dir, true), deadline);
  const int slow = testing::ConnectLoopback(server->port());
  const auto opened = Clock::now();
  // A handshake record announcing a 512-byte ClientHello, of which only the start arrives.
  const std::string half_hello("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  REQUIRE(::send(slow, half_hello.data(), half_hello.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(half_hello.size()));

  const auto scrape_started = Clock::now();
  const std::string answer =
      HttpsGet(server->port(), dir, /*client_cert=*/true, milliseconds(1000));
  const auto scrape_took = Clock::now() - scrape_started;
  INFO(answer.substr(0, 200));
  CHECK(HasExposition(answer));
  CHECK(scrape_took < milliseconds(1000));

  const bool closed = testing::WaitUntil([&] { return ClosedByServer(slow); },
                                         std::chrono::seconds(10), milliseconds(20));
  const auto lasted = Clock::now() - opened;
  ::close(slow);
  CHECK(closed);
  CHECK(lasted >= deadline - milliseconds(100));
  CHECK(lasted < deadline + milliseconds(2000));
}

TEST_CASE("unusable metrics TLS files stop the start with INVALID_ARGUMENT naming the flag") {
  const std::string dir = Certificates("metrics_tls_bad_files");
  std::ofstream(dir + "/garbage.pem") << "not a certificate\n";
  WorkerMetrics metrics(kWorkerVersion);
  struct Case {
    MetricsTlsFiles files;
    std::string flag;
  };
  const std::vector<Case> cases = {
      {{dir + "/missing.pem", dir + "/server.key", ""}, "--metrics-tls-cert"},
      {{dir + "/garbage.pem", dir + "/server.key", ""}, "--metrics-tls-cert"},
      {{dir + "/server.pem", dir + "/garbage.pem", ""}, "--metrics-tls-key"},
      {{dir + "/server.pem", dir + "/client.key", ""}, "--metrics-tls-key"},  // not its key
      {{dir + "/server.pem", dir + "/server.key", dir + "/garbage.pem"}, "--metrics-tls-ca"},
      {{dir + "/server.pem", dir + "/server.key", dir + "/missing.pem"}, "--metrics-tls-ca"},
      {{dir + "/server.pem", "", ""}, "--metrics-tls-key"},
      {{"", "", dir + "/ca.pem"}, "--metrics-tls-cert"},
  };
  for (const Case& c : cases) {
    auto server =
        MetricsServer::Start("127.0.0.1:0", metrics.registry(), milliseconds(1000), c.files);
    INFO(c.files.cert << " / " << c.files.key << " / " << c.files.ca);
    REQUIRE_FALSE(server.ok());
    INFO(server.status().ToString());
    CHECK(server.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(server.status().message()).find(c.flag) != std::string::npos);
  }
}

}  // namespace
}  // namespace bitsweep::worker
