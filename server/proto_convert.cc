#include "server/proto_convert.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "rpc/proto_convert.h"

namespace bitsweep::server {

void SweepToProto(const store::SweepInfo& sweep, v1::Sweep* out) {
  out->Clear();
  out->set_id(sweep.id);
  out->set_name(sweep.name);
  out->set_priority(sweep.priority);
  out->set_created_at(absl::ToUnixSeconds(sweep.created_at));
  // The stored sweep JSON holds the run tag only when the sweep has one.
  if (sweep.spec_json.find("\"run_tag\"") != std::string::npos) {
    const nlohmann::json spec = nlohmann::json::parse(sweep.spec_json, nullptr, false);
    if (spec.is_object() && spec.contains("run_tag") && spec["run_tag"].is_string()) {
      out->set_run_tag(spec["run_tag"].get<std::string>());
    }
  }
  auto count = [&](JobState s) -> int64_t {
    auto it = sweep.jobs_by_state.find(s);
    return it == sweep.jobs_by_state.end() ? 0 : it->second;
  };
  out->set_pending(count(JobState::kPending));
  out->set_leased(count(JobState::kLeased) + count(JobState::kCancelRequested));
  out->set_succeeded(count(JobState::kSucceeded));
  out->set_failed(count(JobState::kFailed));
  out->set_canceled(count(JobState::kCanceled));
  out->set_skipped(count(JobState::kSkipped));
  out->set_saved_worker_seconds(sweep.saved_seconds);
  int64_t total = 0;
  for (const auto& [state, n] : sweep.jobs_by_state) total += n;
  out->set_total(total);
  out->set_finished(out->pending() == 0 && out->leased() == 0);
}

void JobToProto(const store::JobInfo& job, const std::string& worker_name,
                const std::optional<JobProgress>& progress, absl::Time now, v1::Job* out) {
  out->Clear();
  out->set_id(job.id);
  out->set_job_key(job.job_key);
  out->set_spec_json(job.spec_json);
  out->set_state(rpc::JobStateToProto(job.state));
  out->set_attempt(job.attempt);
  out->set_max_attempts(job.max_attempts);
  if (!worker_name.empty()) {
    out->set_worker(worker_name);
  } else if (job.worker_id) {
    out->set_worker(absl::StrCat("worker-", *job.worker_id));
  }
  out->set_error(job.last_error);
  if (job.state == JobState::kSucceeded) {
    out->set_progress(1.0);
  } else if (progress &&
             (job.state == JobState::kLeased || job.state == JobState::kCancelRequested)) {
    out->set_progress(progress->progress);
    out->set_phase(progress->phase);
    if (progress->leased_at && now > *progress->leased_at) {
      const double elapsed = absl::ToDoubleSeconds(now - *progress->leased_at);
      out->set_elapsed_seconds(elapsed);
      if (progress->progress > 0 && progress->progress < 1) {
        out->set_eta_seconds(elapsed * (1 - progress->progress) / progress->progress);
      }
    }
  }
  out->set_priority(job.priority);
  out->set_created_at(absl::ToUnixSeconds(job.created_at));
  if (job.leased_at) out->set_leased_at(absl::ToUnixSeconds(*job.leased_at));
  if (job.finished_at) out->set_finished_at(absl::ToUnixSeconds(*job.finished_at));
}

}  // namespace bitsweep::server
