#include "worker/metrics.h"

#include <nlohmann/json.hpp>

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

}  // namespace bitsweep::worker
