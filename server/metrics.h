// ServerMetrics: every Prometheus family of the coordinator, built once at start-up, so every
// series exists (at 0) before its first event. Labels are low-cardinality only, so the number of
// series stays bounded however many jobs run: RPC method and code, job event, catalog method and
// task names, job state; never ids, paths or worker names. Thread-safe (prometheus-cpp families and
// metrics are).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

#include "common/job_state.h"
#include "store/job_store.h"

namespace bitsweep::server {

class ServerMetrics {
 public:
  // `store` feeds bitsweep_jobs{state} and bitsweep_queue_depth at every scrape; it must
  // outlive every collection (the Coordinator owns both).
  explicit ServerMetrics(store::JobStore* store);

  // What an exposer serves: the registry of counters and histograms, and the store gauges.
  std::shared_ptr<prometheus::Collectable> registry() const { return registry_; }
  std::shared_ptr<prometheus::Collectable> store_gauges() const { return store_gauges_; }

  // One finished RPC: its full method name ("SubmitSweep"), its canonical code name ("OK").
  void ObserveRpc(const std::string& method, const std::string& code, double seconds);
  void ObserveLease(double seconds) { lease_duration_->Observe(seconds); }
  void CountTransition(JobEvent event, double n = 1);
  void CountHeartbeat() { heartbeats_->Increment(); }
  // A job that succeeded `seconds` after it was leased (method and task from the catalog).
  void ObserveJobCompleted(const std::string& method, const std::string& task, double seconds);
  void CountJobCompleted(const std::string& method, const std::string& task);
  // bitsweep_coordinator_info{tls,auth} = 1 and bitsweep_lease_ttl_seconds.
  void SetConfig(bool tls, bool auth, double lease_ttl_seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Collectable> store_gauges_;
  prometheus::Family<prometheus::Histogram>* rpc_duration_;
  prometheus::Histogram* lease_duration_;
  prometheus::Family<prometheus::Counter>* transitions_;
  prometheus::Counter* heartbeats_;
  prometheus::Family<prometheus::Counter>* jobs_completed_;
  prometheus::Family<prometheus::Histogram>* job_duration_;
  prometheus::Family<prometheus::Gauge>* info_;
  prometheus::Gauge* lease_ttl_;
};

}  // namespace bitsweep::server
