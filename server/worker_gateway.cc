#include "server/worker_gateway.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/catalog.h"
#include "common/job_spec.h"

namespace bitsweep::server {
namespace {

// RegisterRequest.gpus as stored (workers.gpus), after checking that they agree with the offer:
// one device per GPU, and no more memory per device than the smallest GPU has.
StatusOr<std::string> GpusJson(const v1::RegisterRequest& request) {
  nlohmann::json gpus = nlohmann::json::array();
  if (request.gpus().empty()) return gpus.dump();
  if (request.devices() != request.gpus_size()) {
    return absl::InvalidArgumentError(absl::StrCat("devices: ", request.devices(), " but ",
                                                   request.gpus_size(), " GPUs registered"));
  }
  int64_t smallest = std::numeric_limits<int64_t>::max();
  for (const v1::GpuDevice& g : request.gpus()) {
    if (g.total_bytes() <= 0 || g.free_bytes() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("gpus: cuda:", g.index(), " reports no memory"));
    }
    smallest = std::min(smallest, g.total_bytes());
    gpus.push_back({{"index", g.index()},
                    {"id", g.id()},
                    {"name", g.name()},
                    {"total_bytes", g.total_bytes()},
                    {"free_bytes", g.free_bytes()}});
  }
  if (request.memory_gb() * 1024.0 * 1024.0 * 1024.0 > static_cast<double>(smallest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("memory_gb: ", request.memory_gb(), " GiB per device exceeds the smallest "
                     "GPU's ", static_cast<double>(smallest) / (1024.0 * 1024.0 * 1024.0), " GiB"));
  }
  return gpus.dump();
}

// RegisterRequest.session: long enough not to be guessed.
constexpr std::size_t kMinSessionLength = 16;

// Metric labels for a leased job: catalog names only (a task given as a file path is "file"),
// so the label sets stay small whatever the sweeps contain.
LeaseEntry LeaseLabels(const std::string& spec_json, absl::Time now) {
  LeaseEntry entry;
  entry.leased_at = now;
  entry.method = "unknown";
  entry.task = "unknown";
  auto spec = JobSpecFromJson(spec_json);
  if (spec.ok()) {
    if (LookupMethod(spec->quant.method).ok()) entry.method = spec->quant.method;
    entry.task = IsTaskPath(spec->eval.task) ? "file" : spec->eval.task;
    if (!LookupTask(entry.task).ok()) entry.task = "file";
  }
  return entry;
}

// The worker's provenance object plus who ran the job under which lease (the coordinator is
// the one that knows both for sure).
StatusOr<std::string> Provenance(const v1::CompleteRequest& request, const std::string& worker) {
  nlohmann::json provenance = nlohmann::json::object();
  if (!request.provenance_json().empty()) {
    provenance = nlohmann::json::parse(request.provenance_json(), nullptr, false);
    if (provenance.is_discarded() || !provenance.is_object()) {
      return absl::InvalidArgumentError("provenance_json: not a JSON object");
    }
  }
  provenance["worker_id"] = request.worker_id();
  if (!worker.empty()) provenance["worker"] = worker;
  provenance["lease_epoch"] = request.lease_epoch();
  return provenance.dump();
}

}  // namespace

grpc::Status WorkerGatewayService::Register(grpc::ServerContext* context,
                                            const v1::RegisterRequest* request,
                                            v1::RegisterResponse* response) {
  return guard_.Run("Register", context, [&]() -> Status {
    if (request->name().empty()) return absl::InvalidArgumentError("name: empty");
    if (request->devices() < 0) return absl::InvalidArgumentError("devices: must be >= 0");
    if (request->max_tp() < 0) return absl::InvalidArgumentError("max_tp: must be >= 0");
    if (!(request->memory_gb() >= 0)) return absl::InvalidArgumentError("memory_gb: must be >= 0");
    if (!request->session().empty() && request->session().size() < kMinSessionLength) {
      return absl::InvalidArgumentError(
          absl::StrCat("session: at least ", kMinSessionLength, " characters"));
    }
    store::WorkerInfo info;
    info.name = request->name();
    info.session = request->session();
    info.capabilities.devices = request->devices();
    info.capabilities.memory_gb = request->memory_gb();
    info.capabilities.tp = std::max(1, request->max_tp());
    info.artifacts.assign(request->artifacts().begin(), request->artifacts().end());
    nlohmann::json labels = nlohmann::json::object();
    for (const auto& [key, value] : request->labels()) {
      if (key.empty()) return absl::InvalidArgumentError("labels: a key is empty");
      labels[key] = value;
    }
    info.labels_json = labels.dump();
    ASSIGN_OR_RETURN(info.gpus_json, GpusJson(*request));
    // A name is refused while another session holds it and was seen within one lease TTL.
    ASSIGN_OR_RETURN(int64_t worker_id,
                     deps_.store->RegisterWorker(info, deps_.now(), deps_.lease_ttl));
    ASSIGN_OR_RETURN(std::string cluster_id, deps_.store->ClusterId());
    response->set_cluster_id(cluster_id);
    deps_.board->PutWorker(worker_id, WorkerEntry{info.name, info.capabilities});
    response->set_worker_id(worker_id);
    response->set_lease_ttl_seconds(absl::ToDoubleSeconds(deps_.lease_ttl));
    return absl::OkStatus();
  });
}

namespace {

// The most of a job's output the coordinator keeps (CompleteRequest.log_tail): the worker's 64 KiB
// and the line it puts before them when it left some out.
constexpr size_t kMaxJobLogBytes = 65 * 1024;

// Stores the output a worker sent with an accepted Complete or Fail, its last kMaxJobLogBytes
// (from a character boundary). Best effort: the job's state change stands whatever happens here.
void StoreJobLog(const ServiceDeps& deps, int64_t job_id, int64_t epoch, std::string text) {
  if (text.empty()) return;
  if (text.size() > kMaxJobLogBytes) {
    size_t from = text.size() - kMaxJobLogBytes;
    while (from < text.size() && (static_cast<unsigned char>(text[from]) & 0xC0) == 0x80) ++from;
    text = absl::StrCat("... (", from, " earlier bytes not kept)\n", text.substr(from));
  }
  std::replace(text.begin(), text.end(), '\0', ' ');
  (void)deps.store->PutJobLog(job_id, epoch, text, deps.now());
}

}  // namespace

grpc::Status WorkerGatewayService::Lease(grpc::ServerContext* context,
                                         const v1::LeaseRequest* request,
                                         v1::LeaseResponse* response) {
  const absl::Time start = deps_.now();
  grpc::Status status = guard_.Run("Lease", context, [&]() -> Status {
    const absl::Time now = deps_.now();
    // The store reads the worker's registered capabilities from the database.
    StatusOr<std::optional<store::LeasedJob>> got =
        deps_.store->Lease(request->worker_id(), now, deps_.lease_ttl, request->request_id(),
                           request->session());
    if (got.status().code() == absl::StatusCode::kNotFound) {
      return absl::NotFoundError(absl::StrCat("worker_id: ", request->worker_id(),
                                              " is not registered: call Register again"));
    }
    ASSIGN_OR_RETURN(std::optional<store::LeasedJob> leased, std::move(got));
    response->set_lease_ttl_seconds(absl::ToDoubleSeconds(deps_.lease_ttl));
    if (!leased) {
      response->set_has_job(false);
      return absl::OkStatus();
    }
    response->set_has_job(true);
    response->set_job_id(leased->job_id);
    response->set_lease_epoch(leased->epoch);
    response->set_attempt(leased->attempt);
    response->set_spec_json(leased->spec_json);
    response->set_artifact_key(leased->artifact_key);
    deps_.board->Leased(leased->job_id, LeaseLabels(leased->spec_json, now));
    deps_.metrics->CountTransition(JobEvent::kLease);
    return absl::OkStatus();
  });
  deps_.metrics->ObserveLease(absl::ToDoubleSeconds(deps_.now() - start));
  return status;
}

grpc::Status WorkerGatewayService::Heartbeat(grpc::ServerContext* context,
                                             const v1::HeartbeatRequest* request,
                                             v1::HeartbeatResponse* response) {
  return guard_.Run("Heartbeat", context, [&]() -> Status {
    deps_.metrics->CountHeartbeat();
    ASSIGN_OR_RETURN(store::HeartbeatReply reply,
                     deps_.store->Heartbeat(request->job_id(), request->lease_epoch(), deps_.now(),
                                            deps_.lease_ttl, request->session()));
    const double progress =
        std::isfinite(request->progress()) ? std::clamp(request->progress(), 0.0, 1.0) : 0.0;
    JobProgress reported;
    reported.progress = progress;
    reported.phase = request->phase();
    deps_.board->SetProgress(request->job_id(), reported);
    response->set_cancel_requested(reply.cancel_requested);
    return absl::OkStatus();
  });
}

grpc::Status WorkerGatewayService::Complete(grpc::ServerContext* context,
                                            const v1::CompleteRequest* request,
                                            v1::CompleteResponse* response) {
  return guard_.Run("Complete", context, [&]() -> Status {
    ASSIGN_OR_RETURN(std::string provenance,
                     Provenance(*request, WorkerName(deps_, request->worker_id())));
    std::vector<store::JobResultRow> rows;
    for (const auto& metric : request->metrics()) {
      if (metric.name().empty()) return absl::InvalidArgumentError("metrics[].name: empty");
      store::JobResultRow row;
      row.metric = metric.name();
      row.value = metric.value();
      row.stderr_value = metric.stderr();
      row.n = metric.n();
      row.provenance_json = provenance;
      rows.push_back(std::move(row));
    }
    const absl::Time now = deps_.now();
    ASSIGN_OR_RETURN(JobState state,
                     deps_.store->Complete(request->job_id(), request->lease_epoch(), rows, now,
                                           request->session()));
    StoreJobLog(deps_, request->job_id(), request->lease_epoch(), request->log_tail());
    // A replayed Complete finds no lease on the board and counts nothing twice.
    if (auto lease = deps_.board->Finished(request->job_id())) {
      deps_.metrics->CountTransition(JobEvent::kComplete);
      // After a cancel request, Complete lands in CANCELED: not a completed job.
      if (state != JobState::kSucceeded) return absl::OkStatus();
      deps_.metrics->CountJobCompleted(lease->method, lease->task);
      deps_.metrics->ObserveJobCompleted(lease->method, lease->task,
                                         absl::ToDoubleSeconds(now - lease->leased_at));
    }
    return absl::OkStatus();
  });
}

grpc::Status WorkerGatewayService::Fail(grpc::ServerContext* context,
                                        const v1::FailRequest* request,
                                        v1::FailResponse* response) {
  return guard_.Run("Fail", context, [&]() -> Status {
    ASSIGN_OR_RETURN(JobState state,
                     deps_.store->Fail(request->job_id(), request->lease_epoch(), request->reason(),
                                       request->retryable(), deps_.now(), request->session()));
    StoreJobLog(deps_, request->job_id(), request->lease_epoch(), request->log_tail());
    if (deps_.board->Finished(request->job_id())) {
      deps_.metrics->CountTransition(state == JobState::kPending ? JobEvent::kRetry
                                                                 : JobEvent::kFail);
    }
    return absl::OkStatus();
  });
}

}  // namespace bitsweep::server
