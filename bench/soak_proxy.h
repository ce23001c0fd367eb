// A TCP proxy for bench/soak, between the workers and the coordinator: every connection it
// accepts on 127.0.0.1 is forwarded to a target port, with two faults on demand. Delay holds
// each chunk of bytes, in either direction, for a while before forwarding it; ResetAll ends every
// open connection at once with a TCP reset (SO_LINGER 0), as a dropped NAT entry or a restarted
// load balancer would. One thread accepts; each connection is served by a thread of its own.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace bitsweep::bench {

class SoakProxy {
 public:
  // Listens on 127.0.0.1:`port` (0: a free one) and forwards to 127.0.0.1:`target_port`.
  // nullptr when it cannot listen.
  static std::unique_ptr<SoakProxy> Start(int port, int target_port);
  ~SoakProxy();
  SoakProxy(const SoakProxy&) = delete;
  SoakProxy& operator=(const SoakProxy&) = delete;

  int port() const { return port_; }
  // Each forwarded chunk waits this long first (0: none).
  void SetDelayMs(int ms) { delay_ms_ = ms; }
  // Resets every open connection; returns how many there were.
  int ResetAll();
  // Connections accepted so far.
  long accepted() const { return accepted_; }

 private:
  struct Connection {
    int client = -1;
    int server = -1;
    std::atomic<bool> reset{false};
    std::atomic<bool> done{false};
  };
  SoakProxy(int listen_fd, int port, int target_port);
  void Accept();
  void Serve(std::shared_ptr<Connection> c);

  int listen_fd_;
  int port_;
  int target_port_;
  std::atomic<int> delay_ms_{0};
  std::atomic<bool> stop_{false};
  std::atomic<long> accepted_{0};
  std::mutex mu_;
  std::vector<std::shared_ptr<Connection>> open_;  // guarded by mu_
  std::vector<std::thread> threads_;               // guarded by mu_
  std::thread acceptor_;
};

}  // namespace bitsweep::bench
