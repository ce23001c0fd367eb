#include "worker/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>

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
    const std::string& address, std::shared_ptr<prometheus::Collectable> collectable) {
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
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 16) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("metrics_listen: cannot listen on '", address, "': ", why));
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(fd, ntohs(a.sin_port), std::move(collectable)));
}

MetricsServer::MetricsServer(int fd, int port, std::shared_ptr<prometheus::Collectable> collectable)
    : fd_(fd), port_(port), collectable_(std::move(collectable)) {
  thread_ = std::thread([this] { Serve(); });
}

MetricsServer::~MetricsServer() {
  stop_ = true;
  thread_.join();
  close(fd_);
}

void MetricsServer::Serve() {
  while (!stop_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    const int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 65536) {
      const ssize_t n = recv(c, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string status = "200 OK", body;
    if (request.rfind("GET /metrics ", 0) == 0 || request.rfind("GET /metrics?", 0) == 0) {
      std::ostringstream out;
      prometheus::TextSerializer().Serialize(out, collectable_->Collect());
      body = out.str();
    } else {
      status = "404 Not Found";
      body = "only GET /metrics is served here\n";
    }
    const std::string response =
        absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: text/plain; version=0.0.4\r\n",
                     "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
    size_t sent = 0;
    while (sent < response.size()) {
      const ssize_t n = send(c, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    close(c);
  }
}

}  // namespace bitsweep::worker
