#include "server/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cctype>
#include <vector>

namespace bitsweep::server {
namespace {

prometheus::Histogram::BucketBoundaries RpcBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// Jobs run from seconds (tiny checkpoints) to many hours (large models on CPU).
prometheus::Histogram::BucketBoundaries JobBuckets() {
  return {1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400};
}

std::string StateLabel(JobState state) {
  std::string name(JobStateName(state));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

// Reads the job counts from the store at scrape time, so the gauges are never stale and no
// background thread is needed. A store error yields no samples (the scrape still succeeds and
// bitsweep_store_up says why the gauges are missing).
class StoreGauges : public prometheus::Collectable {
 public:
  explicit StoreGauges(store::JobStore* store) : store_(store) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily up{"bitsweep_store_up",
                                "1 when the last scrape could read job counts from PostgreSQL",
                                prometheus::MetricType::Gauge,
                                {}};
    prometheus::ClientMetric up_value;
    auto counts = store_->CountJobsByState();
    up_value.gauge.value = counts.ok() ? 1 : 0;
    up.metric.push_back(up_value);
    std::vector<prometheus::MetricFamily> out{up};
    if (!counts.ok()) return out;

    prometheus::MetricFamily jobs{
        "bitsweep_jobs", "Jobs by state (all sweeps)", prometheus::MetricType::Gauge, {}};
    for (const auto& [state, n] : *counts) {
      prometheus::ClientMetric m;
      m.label.push_back({"state", StateLabel(state)});
      m.gauge.value = static_cast<double>(n);
      jobs.metric.push_back(m);
    }
    prometheus::MetricFamily depth{"bitsweep_queue_depth",
                                   "Jobs waiting for a worker (pending)",
                                   prometheus::MetricType::Gauge,
                                   {}};
    prometheus::ClientMetric d;
    const auto pending = counts->find(JobState::kPending);
    d.gauge.value = pending == counts->end() ? 0 : static_cast<double>(pending->second);
    depth.metric.push_back(d);
    out.push_back(jobs);
    out.push_back(depth);
    if (auto saved = store_->EarlyAbortTotals(); saved.ok()) {
      prometheus::MetricFamily family{
          "bitsweep_early_abort_saved_worker_seconds",
          "Worker-seconds the jobs skipped by early_abort rules are estimated to have saved "
          "(each counts its baseline job's run time; bitsweep_jobs{state=\"skipped\"} counts them)",
          prometheus::MetricType::Gauge,
          {}};
      prometheus::ClientMetric m;
      m.gauge.value = saved->saved_seconds;
      family.metric.push_back(m);
      out.push_back(family);
    }
    return out;
  }

 private:
  store::JobStore* store_;
};

}  // namespace

ServerMetrics::ServerMetrics(store::JobStore* store)
    : registry_(std::make_shared<prometheus::Registry>()),
      store_gauges_(std::make_shared<StoreGauges>(store)) {
  rpc_duration_ = &prometheus::BuildHistogram()
                       .Name("bitsweep_rpc_duration_seconds")
                       .Help("Coordinator RPC latency by method and status code")
                       .Register(*registry_);
  lease_duration_ = &prometheus::BuildHistogram()
                         .Name("bitsweep_lease_duration_seconds")
                         .Help("Latency of the Lease RPC (picking and leasing a job)")
                         .Register(*registry_)
                         .Add({}, RpcBuckets());
  transitions_ = &prometheus::BuildCounter()
                      .Name("bitsweep_job_transitions_total")
                      .Help("Job state transitions applied through the coordinator, by event")
                      .Register(*registry_);
  heartbeats_ = &prometheus::BuildCounter()
                     .Name("bitsweep_worker_heartbeats_total")
                     .Help("Heartbeats received from workers")
                     .Register(*registry_)
                     .Add({});
  jobs_completed_ = &prometheus::BuildCounter()
                         .Name("bitsweep_jobs_completed_total")
                         .Help("Jobs that succeeded, by quantization method and eval task")
                         .Register(*registry_);
  job_duration_ = &prometheus::BuildHistogram()
                       .Name("bitsweep_job_duration_seconds")
                       .Help("Time from lease to successful completion, by method and task")
                       .Register(*registry_);
  info_ = &prometheus::BuildGauge()
               .Name("bitsweep_coordinator_info")
               .Help("Always 1; labels describe the coordinator's effective configuration")
               .Register(*registry_);
  lease_ttl_ = &prometheus::BuildGauge()
                    .Name("bitsweep_lease_ttl_seconds")
                    .Help("Lease time-to-live granted to workers")
                    .Register(*registry_)
                    .Add({});
}

void ServerMetrics::ObserveRpc(const std::string& method, const std::string& code, double seconds) {
  rpc_duration_->Add({{"method", method}, {"code", code}}, RpcBuckets()).Observe(seconds);
}

void ServerMetrics::CountTransition(JobEvent event, double n) {
  if (n <= 0) return;
  transitions_->Add({{"event", std::string(JobEventName(event))}}).Increment(n);
}

void ServerMetrics::ObserveJobCompleted(const std::string& method, const std::string& task,
                                        double seconds) {
  job_duration_->Add({{"method", method}, {"task", task}}, JobBuckets()).Observe(seconds);
}

void ServerMetrics::CountJobCompleted(const std::string& method, const std::string& task) {
  jobs_completed_->Add({{"method", method}, {"task", task}}).Increment();
}

void ServerMetrics::SetConfig(bool tls, bool auth, double lease_ttl_seconds) {
  info_->Add({{"tls", tls ? "true" : "false"}, {"auth", auth ? "true" : "false"}}).Set(1);
  lease_ttl_->Set(lease_ttl_seconds);
}

}  // namespace bitsweep::server
