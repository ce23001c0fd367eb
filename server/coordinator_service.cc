#include "server/coordinator_service.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/path_roots.h"
#include "common/sweep.h"
#include "common/sweep_inputs.h"
#include "rpc/proto_convert.h"
#include "server/paging.h"
#include "server/proto_convert.h"
#include "server/results_query.h"

namespace bitsweep::server {
namespace {

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

store::NewJob ToNewJob(const JobSpec& spec, const std::optional<EarlyAbortRule>& rule) {
  store::NewJob job;
  // Early abort (common/early_abort.h): every quantized job knows its baseline's key; under a
  // rule, the jobs that wait for their artifact's `on` perplexity are held back at first.
  job.baseline_key = BaselineJobKey(spec);
  if (rule && HeldByRule(*rule, spec, /*sweep_has_on_task=*/true)) {
    job.hold = absl::Seconds(rule->hold_seconds);
  }
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
    // Before ExpandSweep, which reads each model's config.json.
    RETURN_IF_ERROR(CheckSweepPaths(spec, deps_.roots));
    ExpandOptions expand;
    expand.max_jobs = deps_.max_jobs_per_sweep;
    ASSIGN_OR_RETURN(ExpandedSweep expanded, ExpandSweep(spec, expand));
    if (deps_.check_inputs) {
      InputCheckOptions check;
      check.check_named_data = false;  // the workers' data folder, not ours
      const std::vector<std::string> problems = CheckSweepInputs(expanded, check);
      if (!problems.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            source, ": ", problems.size(), " problem", problems.size() == 1 ? "" : "s",
            " with what the jobs read (nothing was stored):\n  ", absl::StrJoin(problems, "\n  ")));
      }
    }
    std::vector<store::NewJob> jobs;
    jobs.reserve(expanded.jobs.size());
    for (const JobSpec& job : expanded.jobs) jobs.push_back(ToNewJob(job, spec.early_abort));
    nlohmann::json sweep_json = {{"source", source}, {"yaml", request->sweep_yaml()}};
    // The store reads the rule from here when a result arrives (store/early_abort.cc).
    if (spec.early_abort) {
      sweep_json["early_abort"] = nlohmann::json::parse(EarlyAbortRuleToJson(*spec.early_abort));
    }
    if (!spec.run_tag.empty()) sweep_json["run_tag"] = spec.run_tag;  // SweepToProto reads it
    // The models' display names, by folder as the jobs name them (ModelNamesOf reads them).
    if (auto names = ModelNames(spec); !names.empty()) sweep_json["model_names"] = names;
    const absl::Time now = TruncateToMicros(deps_.now());
    store::SubmitCounts counts;
    ASSIGN_OR_RETURN(int64_t sweep_id,
                     deps_.store->SubmitSweep(request->request_id(), spec.name, sweep_json.dump(),
                                              spec.priority, jobs, now, &counts));
    ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(sweep_id));
    SweepToProto(sweep, response->mutable_sweep());
    // A concurrent submission with the same request_id won the race.
    response->set_replayed(sweep.created_at != now);
    if (!response->replayed()) {
      response->set_new_jobs(counts.created);
      response->set_reused_jobs(counts.reused);
      response->set_rerun_jobs(counts.resubmitted);
      response->set_shared_jobs(counts.shared);
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
  return guard_.RunRead("GetSweep", context, [&]() -> Status {
    ASSIGN_OR_RETURN(store::SweepInfo sweep, deps_.store->GetSweep(request->sweep_id()));
    SweepToProto(sweep, response);
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::ListSweeps(grpc::ServerContext* context,
                                            const v1::ListSweepsRequest* request,
                                            v1::ListSweepsResponse* response) {
  return guard_.RunRead("ListSweeps", context, [&]() -> Status {
    ASSIGN_OR_RETURN(const int32_t size, PageSize(request->page_size(), request->limit()));
    const PageKey key{"sweeps", ""};
    ASSIGN_OR_RETURN(const int64_t before, ReadPageToken(request->page_token(), key));
    ASSIGN_OR_RETURN(std::vector<store::SweepInfo> sweeps,
                     deps_.store->ListSweepsPage(before, size + 1));
    response->set_next_page_token(FillPage(
        sweeps, size, key,
        [](const store::SweepInfo& info) {
          v1::Sweep s;
          SweepToProto(info, &s);
          return s;
        },
        [](const v1::Sweep& s) { return s.ByteSizeLong(); },
        [&](v1::Sweep s) { *response->add_sweeps() = std::move(s); },
        [](const store::SweepInfo& info) { return info.id; }));
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::ListJobs(grpc::ServerContext* context,
                                          const v1::ListJobsRequest* request,
                                          v1::ListJobsResponse* response) {
  return guard_.RunRead("ListJobs", context, [&]() -> Status {
    ASSIGN_OR_RETURN(const int32_t size, PageSize(request->page_size(), request->limit()));
    store::JobFilter filter;
    filter.sweep_id = request->sweep_id();
    ASSIGN_OR_RETURN(filter.state, rpc::JobStateFromProto(request->state(), "state"));
    const PageKey key{"jobs", absl::StrCat("sweep=", filter.sweep_id,
                                           ",state=", static_cast<int>(request->state()))};
    ASSIGN_OR_RETURN(const int64_t after, ReadPageToken(request->page_token(), key));
    if (filter.sweep_id != 0 && after == 0) {
      RETURN_IF_ERROR(deps_.store->GetSweep(filter.sweep_id).status());  // NOT_FOUND
    }
    ASSIGN_OR_RETURN(std::vector<store::JobInfo> jobs,
                     deps_.store->ListJobsPage(filter, after, size + 1));
    response->set_next_page_token(FillPage(
        jobs, size, key,
        [&](const store::JobInfo& job) {
          v1::Job j;
          JobToProto(job, job.worker_name, deps_.board->Progress(job.id), deps_.now(), &j);
          return j;
        },
        [](const v1::Job& j) { return j.ByteSizeLong(); },
        [&](v1::Job j) { *response->add_jobs() = std::move(j); },
        [](const store::JobInfo& job) { return job.id; }));
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::WatchSweep(grpc::ServerContext* context,
                                            const v1::GetSweepRequest* request,
                                            grpc::ServerWriter<v1::Sweep>* writer) {
  return guard_.RunRead("WatchSweep", context, [&]() -> Status {
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
  return guard_.RunRead("QueryResults", context, [&]() -> Status {
    ASSIGN_OR_RETURN(const int32_t size, PageSize(request->page_size()));
    const PageKey key{"results", absl::StrCat("sweep=", request->sweep_id())};
    ASSIGN_OR_RETURN(const int64_t after, ReadPageToken(request->page_token(), key));
    ASSIGN_OR_RETURN(std::vector<store::JobResults> jobs,
                     ResultsPageOf(*deps_.store, request->sweep_id(), after, size));
    if (after == 0) {
      ASSIGN_OR_RETURN(auto names, ModelNamesOf(*deps_.store, request->sweep_id()));
      response->mutable_model_names()->insert(names.begin(), names.end());
    }
    response->set_next_page_token(FillPage(
        jobs, size, key,
        [](const store::JobResults& job) {
          v1::JobResults out;
          out.set_job_id(job.job_id);
          out.set_job_key(job.job_key);
          out.set_spec_json(job.spec_json);
          out.set_provenance_json(job.provenance_json);
          if (job.state == JobState::kSkipped) out.set_skipped_reason(job.last_error);
          for (const store::StoredMetric& m : MetricsOf(job)) {
            v1::Metric* metric = out.add_metrics();
            metric->set_name(m.metric);
            metric->set_value(m.value);
            metric->set_stderr(m.stderr_value);
            metric->set_n(m.n);
          }
          return out;
        },
        [](const v1::JobResults& j) { return j.ByteSizeLong(); },
        [&](v1::JobResults j) { *response->add_jobs() = std::move(j); },
        [](const store::JobResults& job) { return job.job_id; }));
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::DescribeJob(grpc::ServerContext* context,
                                             const v1::DescribeJobRequest* request,
                                             v1::JobDescription* response) {
  return guard_.RunRead("DescribeJob", context, [&]() -> Status {
    ASSIGN_OR_RETURN(store::JobInfo job, deps_.store->GetJob(request->job_id()));  // NOT_FOUND
    JobToProto(job, job.worker_name, deps_.board->Progress(job.id), deps_.now(),
               response->mutable_job());
    response->set_sweep_id(job.sweep_id);
    response->set_artifact_key(job.artifact_key);
    response->mutable_requirements()->set_devices(job.needs.devices);
    response->mutable_requirements()->set_memory_gb(job.needs.memory_gb);
    response->set_tp(job.needs.tp);
    ASSIGN_OR_RETURN(std::vector<store::JobEventRow> events, deps_.store->Events(job.id));
    for (const store::JobEventRow& e : events) {
      v1::JobEventRecord* out = response->add_events();
      out->set_at(absl::ToUnixSeconds(e.at));
      out->set_event(std::string(JobEventName(e.event)));
      if (e.from) out->set_from_state(std::string(JobStateName(*e.from)));
      out->set_to_state(std::string(JobStateName(e.to)));
      out->set_epoch(e.epoch);
      if (e.worker_id) {
        const std::string name = WorkerName(deps_, *e.worker_id);
        out->set_worker(name.empty() ? absl::StrCat("worker-", *e.worker_id) : name);
      }
      out->set_reason(e.reason);
    }
    store::ResultFilter filter;
    filter.job_key = job.job_key;
    ASSIGN_OR_RETURN(std::vector<store::JobResultRow> rows, deps_.store->Results(filter));
    response->set_provenance_json(rows.empty() ? "{}" : rows.front().provenance_json);
    for (const store::JobResultRow& r : rows) {
      v1::Metric* metric = response->add_metrics();
      metric->set_name(r.metric);
      metric->set_value(r.value);
      metric->set_stderr(r.stderr_value);
      metric->set_n(r.n);
    }
    return absl::OkStatus();
  });
}

grpc::Status CoordinatorService::GetJobLog(grpc::ServerContext* context,
                                           const v1::GetJobLogRequest* request,
                                           v1::JobLog* response) {
  return guard_.RunRead("GetJobLog", context, [&]() -> Status {
    ASSIGN_OR_RETURN(store::JobLog log, deps_.store->GetJobLog(request->job_id()));  // NOT_FOUND
    response->set_job_id(request->job_id());
    response->set_stored(log.stored);
    if (!log.stored) return absl::OkStatus();
    response->set_attempt(log.attempt);
    response->set_epoch(log.epoch);
    response->set_stored_at(absl::ToUnixSeconds(log.stored_at));
    response->set_text(log.text);
    return absl::OkStatus();
  });
}

}  // namespace bitsweep::server
