// The worker's /metrics server (worker/metrics.h): every connection is served at once, each
// within a whole-request deadline, so no client can hold the endpoint the liveness probe uses.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "tests/testing/poll.h"
#include "tests/testing/socket.h"
#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

int Connect(int port) { return testing::ConnectLoopback(port); }

// GET /metrics on a fresh connection; the whole response, "" when none came within `timeout`.
std::string Get(int port, milliseconds timeout) {
  const int fd = Connect(port);
  const std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) {
      response.clear();
      break;
    }
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return response;
}

// Whether the server has closed `fd` (recv answers 0 or an error), without blocking.
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

std::unique_ptr<MetricsServer> StartServer(milliseconds deadline) {
  WorkerMetrics metrics(kWorkerVersion);
  auto server = MetricsServer::Start("127.0.0.1:0", metrics.registry(), deadline);
  REQUIRE(server.ok());
  return std::move(server).value();
}

TEST_CASE(
    "a client trickling its request one byte at a time neither delays other scrapes nor "
    "outlives the whole-request deadline") {
  const milliseconds deadline(1500);
  auto server = StartServer(deadline);
  const int slow = Connect(server->port());
  const auto opened = Clock::now();
  REQUIRE(::send(slow, "G", 1, MSG_NOSIGNAL) == 1);

  // Served at once while the slow request is open (the old server answered it only after the
  // slow client's per-recv timeout, and a byte every few seconds renewed that forever).
  const std::string answer = Get(server->port(), milliseconds(1000));
  INFO(answer.substr(0, 200));
  REQUIRE(answer.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(answer.find("bitsweep_worker_info{version=\"") != std::string::npos);

  // Keep trickling: each byte arrives well within any per-recv timeout, but the deadline counts
  // from the accept.
  bool closed = false;
  while (!closed && Clock::now() - opened < std::chrono::seconds(10)) {
    ::send(slow, "E", 1, MSG_NOSIGNAL);
    closed = testing::WaitUntil([&] { return ClosedByServer(slow); }, milliseconds(200),
                                milliseconds(20));
  }
  const auto lasted = Clock::now() - opened;
  ::close(slow);
  CHECK(closed);
  CHECK(lasted >= deadline - milliseconds(100));
  CHECK(lasted < deadline + milliseconds(2000));
}

TEST_CASE(
    "more idle connections than the server holds at once cannot lock out a scrape: the "
    "oldest make room") {
  auto server = StartServer(std::chrono::seconds(60));
  std::vector<int> idle;
  for (int i = 0; i < MetricsServer::kMaxConnections + 8; ++i)
    idle.push_back(Connect(server->port()));
  const std::string answer = Get(server->port(), milliseconds(2000));
  CHECK(answer.rfind("HTTP/1.1 200 OK", 0) == 0);
  // The first ones were closed to make room; the newest are still open.
  CHECK(testing::WaitUntil([&] { return ClosedByServer(idle.front()); }, milliseconds(2000)));
  CHECK_FALSE(ClosedByServer(idle.back()));
  for (int fd : idle) ::close(fd);
}

TEST_CASE("the worker's metrics server answers 404 for any path but /metrics") {
  auto server = StartServer(std::chrono::seconds(5));
  const int fd = Connect(server->port());
  const std::string request = "GET /secrets HTTP/1.1\r\n\r\n";
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  std::string response;
  char buf[1024];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, n);
  ::close(fd);
  CHECK(response.rfind("HTTP/1.1 404 Not Found", 0) == 0);
}

}  // namespace
}  // namespace bitsweep::worker
