#include "worker/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/catalog.h"
#include "common/job_spec.h"

namespace bitsweep::worker {
namespace {

using nlohmann::json;

// Jobs run from seconds (tiny checkpoints) to many hours (large models on CPU); the same
// boundaries as the coordinator's bitsweep_job_duration_seconds.
prometheus::Histogram::BucketBoundaries JobBuckets() {
  return {1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400};
}

}  // namespace

WorkerMetrics::WorkerMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  jobs_ = &prometheus::BuildCounter()
               .Name("bitsweep_worker_jobs_total")
               .Help("Jobs this worker finished, by quantization method, task kind and outcome")
               .Register(*registry_);
  job_duration_ = &prometheus::BuildHistogram()
                       .Name("bitsweep_worker_job_duration_seconds")
                       .Help("Wall time of a job's child process, by method and task kind")
                       .Register(*registry_);
  heartbeats_ = &prometheus::BuildCounter()
                     .Name("bitsweep_worker_heartbeats_sent_total")
                     .Help("Heartbeats sent to the coordinator, by result (ok, error, fenced)")
                     .Register(*registry_);
  discarded_ = &prometheus::BuildCounter()
                    .Name("bitsweep_worker_results_discarded_total")
                    .Help("Finished results dropped undelivered, by reason (fenced, refused)")
                    .Register(*registry_);
  complete_retries_ = &prometheus::BuildCounter()
                           .Name("bitsweep_worker_complete_retries_total")
                           .Help("Complete calls that failed and will be tried again")
                           .Register(*registry_)
                           .Add({});
  busy_ = &prometheus::BuildGauge()
               .Name("bitsweep_worker_busy")
               .Help("1 while a job runs on this worker, else 0")
               .Register(*registry_)
               .Add({});
  cache_ = &prometheus::BuildCounter()
                .Name("bitsweep_worker_artifact_cache_total")
                .Help("Succeeded jobs that reused a quantized artifact (hit) or made it (miss)")
                .Register(*registry_);
  tokens_per_second_ = &prometheus::BuildGauge()
                            .Name("bitsweep_worker_tokens_per_second")
                            .Help("Evaluation throughput of the last perplexity job")
                            .Register(*registry_)
                            .Add({});
  prometheus::BuildGauge()
      .Name("bitsweep_worker_info")
      .Help("Always 1; the version label names the worker build")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
}

void WorkerMetrics::CountHeartbeat(const std::string& result) {
  heartbeats_->Add({{"result", result}}).Increment();
}

void WorkerMetrics::CountDiscardedResult(const std::string& reason) {
  discarded_->Add({{"reason", reason}}).Increment();
}

void WorkerMetrics::ObserveJob(const std::string& spec_json, const std::string& outcome,
                               double seconds, const std::string& result_json) {
  std::string method = "unknown", kind = "unknown";
  bool perplexity = false;
  if (auto spec = JobSpecFromJson(spec_json); spec.ok()) {
    method = spec->quant.method;
    if (auto task = LookupTask(spec->eval.task); task.ok()) {
      kind = TaskKindName((*task)->kind);
      perplexity = (*task)->kind == TaskKind::kPerplexity;
    }
  }
  jobs_->Add({{"method", method}, {"task_kind", kind}, {"outcome", outcome}}).Increment();
  job_duration_->Add({{"method", method}, {"task_kind", kind}}, JobBuckets()).Observe(seconds);
  if (outcome != "succeeded") return;
  const json r = json::parse(result_json, nullptr, false);
  if (!r.is_object() || !r.contains("provenance") || !r["provenance"].is_object()) return;
  const json& prov = r["provenance"];
  if (prov.contains("artifact_reused") && prov["artifact_reused"].is_boolean()) {
    cache_->Add({{"result", prov["artifact_reused"].get<bool>() ? "hit" : "miss"}}).Increment();
  }
  if (perplexity && prov.contains("eval") && prov["eval"].is_object() &&
      prov["eval"].contains("tokens_per_second") && prov["eval"]["tokens_per_second"].is_number()) {
    tokens_per_second_->Set(prov["eval"]["tokens_per_second"].get<double>());
  }
}

StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Collectable> collectable,
    std::chrono::milliseconds request_deadline) {
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
  a.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot listen on '", address, "': ", why));
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(fd, ntohs(a.sin_port), std::move(collectable), request_deadline));
}

MetricsServer::MetricsServer(int fd, int port, std::shared_ptr<prometheus::Collectable> collectable,
                             std::chrono::milliseconds request_deadline)
    : fd_(fd),
      port_(port),
      collectable_(std::move(collectable)),
      request_deadline_(request_deadline) {
  thread_ = std::thread([this] { Serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
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
  using Clock = std::chrono::steady_clock;
  // One open connection: reading its request head until the blank line (or 64 KiB), then
  // writing its response; closed when done or when its deadline passes.
  struct Connection {
    int fd;
    Clock::time_point deadline;
    std::string request;
    std::string response;  // non-empty: writing
    size_t sent = 0;
  };
  std::vector<Connection> open;
  auto close_at = [&](size_t i) {
    close(open[i].fd);
    open.erase(open.begin() + static_cast<std::ptrdiff_t>(i));
  };
  constexpr size_t kMaxRequest = 65536;
  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({fd_, POLLIN, 0});
    for (const Connection& c : open) {
      fds.push_back({c.fd, static_cast<short>(c.response.empty() ? POLLIN : POLLOUT), 0});
    }
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
      Connection& c = open[k];
      const short revents = fds[k + 1].revents;
      if (revents == 0) continue;
      if (c.response.empty()) {
        char buf[4096];
        const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
          done[k] = true;
          continue;
        }
        if (n > 0) c.request.append(buf, static_cast<size_t>(n));
        if (c.request.find("\r\n\r\n") != std::string::npos || c.request.size() >= kMaxRequest) {
          c.response = Respond(c.request);
        }
      }
      if (!c.response.empty() && (revents & (POLLOUT | POLLIN))) {
        const ssize_t n =
            send(c.fd, c.response.data() + c.sent, c.response.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ||
            c.sent == c.response.size()) {
          done[k] = true;
        }
      }
      if (revents & (POLLERR | POLLNVAL)) done[k] = true;
    }
    const Clock::time_point after = Clock::now();
    for (size_t k = polled; k-- > 0;) {
      if (done[k] || open[k].deadline <= after) close_at(k);
    }
    if (fds[0].revents & POLLIN) {
      for (;;) {
        const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        if (open.size() >= static_cast<size_t>(kMaxConnections)) close_at(0);  // the oldest
        open.push_back(Connection{c, Clock::now() + request_deadline_, {}, {}, 0});
      }
    }
  }
  for (const Connection& c : open) close(c.fd);
}

}  // namespace bitsweep::worker
