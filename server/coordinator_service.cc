#include "server/coordinator_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/sweep.h"
#include "rpc/proto_convert.h"
#include "server/proto_convert.h"
#include "server/results_query.h"

namespace bitsweep::server {
namespace {

constexpr int kDefaultSweepPage = 100;
// WatchSweep sends the sweep at least this often even when nothing changed, so clients can
// tell a quiet sweep from a dead connection.
constexpr absl::Duration kWatchKeepalive = absl::Seconds(5);

// The store keeps microseconds; truncating first makes "created now" comparable.
absl::Time TruncateToMicros(absl::Time t) { return absl::FromUnixMicros(absl::ToUnixMicros(t)); }

StatusOr<std::optional<store::SweepInfo>> FindByRequestId(store::JobStore& store,
                                                          const std::string& request_id) {
  ASSIGN_OR_RETURN(std::vector<store::SweepInfo> sweeps, store.ListSweeps());
  for (auto& s : sweeps) {
    if (s.request_id == request_id) return std::optional<store::SweepInfo>(std::move(s));
  }
  return std::optional<store::SweepInfo>();
}

store::NewJob ToNewJob(const JobSpec& spec) {
  store::NewJob job;
  job.job_key = spec.JobKey();
  job.artifact_key = spec.ArtifactKey();
  // Priority and attempts are scheduling settings of the sweep that asked for the job, kept in
  // their own columns; they enter neither the key nor the stored spec, so that sweeps with
  // different priorities share a job instead of conflicting over its spec (ALREADY_EXISTS).
  JobSpec content = spec;
  content.priority = JobSpec().priority;
  content.max_attempts = JobSpec().max_attempts;
  job.spec_json = JobSpecToJson(content);
  job.priority = spec.priority;
  job.max_attempts = spec.max_attempts;
  job.needs.devices = spec.resources.devices;
  job.needs.memory_gb = spec.resources.memory_gb;
  job.needs.tp = spec.resources.tp;
  return job;
}

}  // namespace

grpc::Status CoordinatorService::SubmitSweep(grpc::ServerContext* context,
                                             const v1::SubmitSweepRequest* request,
                                             v1::SubmitSweepResponse* response) {
  return guard_.Run("SubmitSweep", context, [&]() -> Status {
    if (request->request_id().empty()) {
      return absl::InvalidArgumentError("request_id: empty (send a fresh UUID per sweep)");
    }
    // A replay returns the original sweep whatever the text (the proto's contract).
    ASSIGN_OR_RETURN(auto existing, FindByRequestId(*deps_.store, request->request_id()));
    if (existing) {
      SweepToProto(*existing, response->mutable_sweep());
      response->set_replayed(true);
      return absl::OkStatus();
    }
    const std::string source =
        request->source_name().empty() ? "sweep.yaml" : request->source_name();
    if (!request->base_dir().empty() && request->base_dir().front() != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("base_dir: '", request->base_dir(), "' is not an absolute folder"));
    }
    ParseOptions parse;
    parse.base_dir = request->base_dir();
    ASSIGN_OR_RETURN(SweepSpec spec, ParseSweepYaml(request->sweep_yaml(), source, parse));
    ASSIGN_OR_RETURN(ExpandedSweep expanded, ExpandSweep(spec));
    std::vector<store::NewJob> jobs;
    jobs.reserve(expanded.jobs.size());
    for (const JobSpec& job : expanded.jobs) jobs.push_back(ToNewJob(job));
    const nlohmann::json sweep_json = {{"source", source}, {"yaml", request->sweep_yaml()}};
    const absl::Time now = TruncateToMicros(deps_.now());
    ASSIGN_OR_RETURN(int64_t sweep_id,
                     deps_.store->SubmitSweep(request->request_id(), spec.name, sweep_json.dump(),
                                              spec.priority, jobs, now));
    ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(sweep_id));
    SweepToProto(sweep, response->mutable_sweep());
    // A concurrent submission with the same request_id won the race.
    response->set_replayed(sweep.created_at != now);
    if (!response->replayed()) {
      for (const auto& s : expanded.skipped) {
        auto* out = response->add_skipped();
        out->set_description(s.description);
        out->set_reason(s.reason);
      }
    }
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::GetSweep(grpc::ServerContext* context,
                                          const v1::GetSweepRequest* request, v1::Sweep* response) {
  return guard_.Run("GetSweep", context, [&]() -> Status {
    ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(request->sweep_id()));
    SweepToProto(sweep, response);
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::ListSweeps(grpc::ServerContext* context,
                                            const v1::ListSweepsRequest* request,
                                            v1::ListSweepsResponse* response) {
  return guard_.Run("ListSweeps", context, [&]() -> Status {
    if (request->limit() < 0) return absl::InvalidArgumentError("limit: must be >= 0");
    ASSIGN_OR_RETURN(std::vector<store::SweepInfo> sweeps, deps_.store->ListSweeps());
    std::sort(sweeps.begin(), sweeps.end(),
              [](const auto& a, const auto& b) { return a.id > b.id; });
    const size_t limit = request->limit() == 0 ? kDefaultSweepPage : request->limit();
    for (size_t i = 0; i < sweeps.size() && i < limit; ++i) {
      SweepToProto(sweeps[i], response->add_sweeps());
    }
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::ListJobs(grpc::ServerContext* context,
                                          const v1::ListJobsRequest* request,
                                          v1::ListJobsResponse* response) {
  return guard_.Run("ListJobs", context, [&]() -> Status {
    if (request->limit() < 0) return absl::InvalidArgumentError("limit: must be >= 0");
    ASSIGN_OR_RETURN(std::optional<JobState> state,
                     rpc::JobStateFromProto(request->state(), "state"));
    std::vector<store::JobInfo> jobs;
    if (request->sweep_id() != 0) {
      ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(request->sweep_id()));
      ASSIGN_OR_RETURN(jobs, deps_.store->ListJobs(sweep.id));
    } else {
      // Jobs are shared between sweeps: list each once.
      ASSIGN_OR_RETURN(std::vector<store::SweepInfo> sweeps, deps_.store->ListSweeps());
      std::set<int64_t> seen;
      for (const auto& sweep : sweeps) {
        ASSIGN_OR_RETURN(std::vector<store::JobInfo> part, deps_.store->ListJobs(sweep.id));
        for (auto& job : part) {
          if (seen.insert(job.id).second) jobs.push_back(std::move(job));
        }
      }
      std::sort(jobs.begin(), jobs.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    }
    for (const auto& job : jobs) {
      if (state && job.state != *state) continue;
      if (request->limit() > 0 && response->jobs_size() >= request->limit()) break;
      JobToProto(job, job.worker_name, deps_.board->Progress(job.id), deps_.now(),
                 response->add_jobs());
    }
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::WatchSweep(grpc::ServerContext* context,
                                            const v1::GetSweepRequest* request,
                                            grpc::ServerWriter<v1::Sweep>* writer) {
  return guard_.Run("WatchSweep", context, [&]() -> Status {
    std::optional<v1::Sweep> last_sent;
    absl::Time last_send_time;
    while (true) {
      if (context->IsCancelled()) return absl::CancelledError("the client went away");
      if (deps_.stopping != nullptr && deps_.stopping->load()) {
        return absl::UnavailableError("the coordinator is shutting down; watch again");
      }
      ASSIGN_OR_RETURN(store::SweepInfo info, deps_.store->GetSweep(request->sweep_id()));
      v1::Sweep sweep;
      SweepToProto(info, &sweep);
      const absl::Time now = deps_.now();
      const bool changed =
          !last_sent || last_sent->SerializeAsString() != sweep.SerializeAsString();
      if (changed || now - last_send_time >= kWatchKeepalive) {
        if (!writer->Write(sweep)) return absl::CancelledError("the client went away");
        last_sent = sweep;
        last_send_time = now;
      }
      if (sweep.finished()) return absl::OkStatus();
      absl::SleepFor(deps_.watch_poll_interval);
    }
  });
}

grpc::Status CoordinatorService::CancelSweep(grpc::ServerContext* context,
                                             const v1::CancelSweepRequest* request,
                                             v1::Sweep* response) {
  return guard_.Run("CancelSweep", context, [&]() -> Status {
    ASSIGN_OR_RETURN(
        int64_t changed,
        deps_.store->CancelSweep(request->sweep_id(), "sweep canceled by a client", deps_.now()));
    deps_.metrics->CountTransition(JobEvent::kCancel, static_cast<double>(changed));
    ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(request->sweep_id()));
    SweepToProto(sweep, response);
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::CancelJob(grpc::ServerContext* context,
                                           const v1::CancelJobRequest* request, v1::Job* response) {
  return guard_.Run("CancelJob", context, [&]() -> Status {
    ASSIGN_OR_RETURN(store::JobInfo before, deps_.store->GetJob(request->job_id()));
    RETURN_IF_ERROR(
        deps_.store->CancelJob(request->job_id(), "job canceled by a client", deps_.now()));
    ASSIGN_OR_RETURN(store::JobInfo job, deps_.store->GetJob(request->job_id()));
    if (job.state != before.state) deps_.metrics->CountTransition(JobEvent::kCancel);
    JobToProto(job, job.worker_name, deps_.board->Progress(job.id), deps_.now(), response);
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::QueryResults(grpc::ServerContext* context,
                                              const v1::QueryResultsRequest* request,
                                              v1::QueryResultsResponse* response) {
  return guard_.Run("QueryResults", context, [&]() -> Status {
    ASSIGN_OR_RETURN(std::vector<ResultWithSpec> results,
                     ResultsWithSpecs(*deps_.store, request->sweep_id()));
    for (const auto& [row, spec_json] : results) {
      auto* out = response->add_rows();
      out->set_job_id(row.job_id);
      out->set_job_key(row.job_key);
      out->set_spec_json(spec_json);
      out->mutable_metric()->set_name(row.metric);
      out->mutable_metric()->set_value(row.value);
      out->mutable_metric()->set_stderr(row.stderr_value);
      out->mutable_metric()->set_n(row.n);
      out->set_provenance_json(row.provenance_json);
    }
    return absl::OkStatus();
  });
}

}  // namespace bitsweep::server
