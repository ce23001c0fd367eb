#include "bench/soak_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

namespace bitsweep::bench {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Sends all of `n` bytes; false when the peer is gone.
bool SendAll(int fd, const char* data, ssize_t n) {
  while (n > 0) {
    const ssize_t sent = ::send(fd, data, static_cast<size_t>(n), MSG_NOSIGNAL);
    if (sent <= 0) return false;
    data += sent;
    n -= sent;
  }
  return true;
}

void CloseWithReset(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  ::close(fd);
}

}  // namespace

std::unique_ptr<SoakProxy> SoakProxy::Start(int port, int target_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return nullptr;
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 128) != 0) {
    ::close(fd);
    return nullptr;
  }
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::unique_ptr<SoakProxy> p(new SoakProxy(fd, ntohs(a.sin_port), target_port));
  p->acceptor_ = std::thread([raw = p.get()] { raw->Accept(); });
  return p;
}

SoakProxy::SoakProxy(int listen_fd, int port, int target_port)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port) {}

SoakProxy::~SoakProxy() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  ResetAll();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

int SoakProxy::ResetAll() {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& c : open_) {
    if (!c->done && !c->reset.exchange(true)) ++n;
  }
  open_.erase(std::remove_if(open_.begin(), open_.end(),
                             [](const auto& c) { return c->done.load(); }),
              open_.end());
  return n;
}

void SoakProxy::Accept() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(target_port_);
    if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      if (server >= 0) ::close(server);
      CloseWithReset(client);  // the coordinator is down: refuse as it would
      continue;
    }
    const int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_shared<Connection>();
    c->client = client;
    c->server = server;
    std::lock_guard<std::mutex> lock(mu_);
    open_.push_back(c);
    threads_.emplace_back([this, c] { Serve(c); });
  }
}

void SoakProxy::Serve(std::shared_ptr<Connection> c) {
  char buf[64 * 1024];
  bool open = true;
  while (open && !c->reset && !stop_) {
    pollfd p[2] = {{c->client, POLLIN, 0}, {c->server, POLLIN, 0}};
    if (::poll(p, 2, 50) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::recv(p[i].fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        open = false;
        break;
      }
      if (const int ms = delay_ms_; ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      }
      open = SendAll(i == 0 ? c->server : c->client, buf, n);
    }
  }
  if (c->reset || stop_) {
    CloseWithReset(c->client);
    CloseWithReset(c->server);
  } else {
    ::close(c->client);
    ::close(c->server);
  }
  c->done = true;
}

}  // namespace bitsweep::bench
