#include "server/http_api.h"

#include <httplib.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/job_spec.h"
#include "common/results_table.h"
#include "dashboard/assets.h"
#include "server/paging.h"
#include "server/http_server.h"
#include "server/proto_convert.h"
#include "server/results_query.h"
#include "server/rpc_guard.h"

namespace bitsweep::server {
namespace {

using nlohmann::json;

int HttpCode(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kAborted:
      return 503;
    default:
      return 500;
  }
}

json SweepJson(const store::SweepInfo& info) {
  v1::Sweep s;  // the gRPC message's counting rules (LEASED includes CANCEL_REQUESTED, finished)
  SweepToProto(info, &s);
  return {{"id", s.id()},
          {"name", s.name()},
          {"run_tag", s.run_tag()},
          {"priority", s.priority()},
          {"created_at", s.created_at()},
          {"state", info.state},
          {"pending", s.pending()},
          {"leased", s.leased()},
          {"succeeded", s.succeeded()},
          {"failed", s.failed()},
          {"canceled", s.canceled()},
          {"skipped", s.skipped()},
          {"saved_worker_seconds", s.saved_worker_seconds()},
          {"total", s.total()},
          {"finished", s.finished()}};
}

json JobJson(const store::JobInfo& info, const ServiceDeps& deps) {
  v1::Job j;  // worker_name comes with the job's row: no read per job
  JobToProto(info, info.worker_name, deps.board->Progress(info.id), deps.now(), &j);
  json out = {{"id", j.id()},
              {"sweep_id", info.sweep_id},
              {"job_key", j.job_key()},
              {"state", std::string(JobStateName(info.state))},
              {"attempt", j.attempt()},
              {"max_attempts", j.max_attempts()},
              {"priority", j.priority()},
              {"worker", j.worker()},
              {"error", j.error()},
              {"progress", j.progress()},
              {"phase", j.phase()},
              {"elapsed_seconds", j.elapsed_seconds()},
              {"eta_seconds", j.eta_seconds()}};
  auto spec = JobSpecFromJson(info.spec_json);
  if (spec.ok()) {
    out["model"] = spec->model;
    out["method"] = spec->quant.method;
    out["wbits"] = spec->quant.wbits;
    out["abits"] = spec->quant.abits;
    out["group"] = spec->quant.group_size;
    out["quantization"] = spec->quant.method == "fp" ? "fp" : DescribeQuant(spec->quant);
    out["task"] = spec->eval.task;
  }
  out["spec"] = json::parse(info.spec_json, nullptr, false);
  return out;
}

StatusOr<int64_t> PathId(const httplib::Request& req, const char* field) {
  int64_t id = 0;
  if (req.matches.size() < 2 || !absl::SimpleAtoi(req.matches[1].str(), &id) || id <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": not a positive integer"));
  }
  return id;
}

// The routes of the JSON API: each fills `out` from the store and returns the status that
// JsonHandler maps to an HTTP code.
using RouteFn = Status (*)(const ServiceDeps& deps, const httplib::Request& req, json* out);

// The page a request asks for: ?page_size=N (0 or absent: the default) and ?page_token=T.
struct PageRequest {
  int32_t size = 0;
  int64_t position = 0;
};
StatusOr<PageRequest> ReadPageRequest(const httplib::Request& req, const PageKey& key) {
  int32_t size = 0;
  if (req.has_param("page_size") && !absl::SimpleAtoi(req.get_param_value("page_size"), &size)) {
    return absl::InvalidArgumentError("page_size: not an integer");
  }
  PageRequest page;
  ASSIGN_OR_RETURN(page.size, PageSize(size));
  ASSIGN_OR_RETURN(page.position, ReadPageToken(req.get_param_value("page_token"), key));
  return page;
}

// Fills `list` with one page of `items` (read with one more than page.size) converted by
// `convert`; returns the next page's token.
template <typename Item, typename Convert, typename Position>
std::string JsonPage(const std::vector<Item>& items, const PageRequest& page, const PageKey& key,
                     json* list, Convert convert, Position position) {
  *list = json::array();
  return FillPage(
      items, page.size, key, convert, [](const json& j) { return j.dump().size(); },
      [&](json j) { list->push_back(std::move(j)); }, position);
}

// GET /api/sweeps[?page_size=N&page_token=T]
Status ListSweeps(const ServiceDeps& deps, const httplib::Request& req, json* out) {
  const PageKey key{"sweeps", ""};
  ASSIGN_OR_RETURN(PageRequest page, ReadPageRequest(req, key));
  ASSIGN_OR_RETURN(std::vector<store::SweepInfo> sweeps,
                   deps.store->ListSweepsPage(page.position, page.size + 1));
  json list;
  std::string next =
      JsonPage(sweeps, page, key, &list, SweepJson, [](const store::SweepInfo& s) { return s.id; });
  *out = {{"sweeps", std::move(list)}, {"next_page_token", std::move(next)}};
  return absl::OkStatus();
}

// GET /api/sweeps/ID[?page_size=N&page_token=T]
Status GetSweep(const ServiceDeps& deps, const httplib::Request& req, json* out) {
  ASSIGN_OR_RETURN(int64_t id, PathId(req, "sweep id"));
  const PageKey key{"jobs", absl::StrCat("sweep=", id)};
  ASSIGN_OR_RETURN(PageRequest page, ReadPageRequest(req, key));
  ASSIGN_OR_RETURN(store::SweepInfo sweep, deps.store->GetSweep(id));
  store::JobFilter filter;
  filter.sweep_id = id;
  ASSIGN_OR_RETURN(std::vector<store::JobInfo> jobs,
                   deps.store->ListJobsPage(filter, page.position, page.size + 1));
  json list;
  std::string next = JsonPage(
      jobs, page, key, &list, [&](const store::JobInfo& job) { return JobJson(job, deps); },
      [](const store::JobInfo& job) { return job.id; });
  *out = {{"sweep", SweepJson(sweep)}, {"jobs", std::move(list)}, {"next_page_token", next}};
  return absl::OkStatus();
}

StatusOr<int64_t> SweepParam(const httplib::Request& req) {
  int64_t sweep_id = 0;  // every sweep
  if (req.has_param("sweep") &&
      (!absl::SimpleAtoi(req.get_param_value("sweep"), &sweep_id) || sweep_id <= 0)) {
    return absl::InvalidArgumentError("sweep: not a positive integer");
  }
  return sweep_id;
}

// GET /api/results[?sweep=ID&page_size=N&page_token=T]
Status QueryResults(const ServiceDeps& deps, const httplib::Request& req, json* out) {
  ASSIGN_OR_RETURN(int64_t sweep_id, SweepParam(req));
  const PageKey key{"results", absl::StrCat("sweep=", sweep_id)};
  ASSIGN_OR_RETURN(PageRequest page, ReadPageRequest(req, key));
  ASSIGN_OR_RETURN(std::vector<store::JobResults> jobs,
                   ResultsPageOf(*deps.store, sweep_id, page.position, page.size));
  json list;
  std::string next = JsonPage(
      jobs, page, key, &list,
      [](const store::JobResults& job) {
        json metrics = json::array();
        for (const store::StoredMetric& m : MetricsOf(job)) {
          metrics.push_back(
              {{"metric", m.metric}, {"value", m.value}, {"stderr", m.stderr_value}, {"n", m.n}});
        }
        json out{{"job_id", job.job_id},
                 {"job_key", job.job_key},
                 {"spec", json::parse(job.spec_json, nullptr, false)},
                 {"provenance", json::parse(job.provenance_json, nullptr, false)},
                 {"metrics", std::move(metrics)}};
        // A job an early_abort rule skipped: no metrics, its reason.
        if (job.state == JobState::kSkipped) out["skipped_reason"] = job.last_error;
        return out;
      },
      [](const store::JobResults& job) { return job.job_id; });
  *out = {{"jobs", std::move(list)}, {"next_page_token", std::move(next)}};
  return absl::OkStatus();
}

// GET /api/results/table[?sweep=ID]
Status ResultsTableRoute(const ServiceDeps& deps, const httplib::Request& req, json* out) {
  ASSIGN_OR_RETURN(int64_t sweep_id, SweepParam(req));
  ASSIGN_OR_RETURN(ResultsTable table, ResultsTableOf(*deps.store, sweep_id));
  *out = {{"table", json::parse(ResultsTableToJson(table))}};
  return absl::OkStatus();
}

json EventJson(const ServiceDeps& deps, const store::JobEventRow& e) {
  json item = {{"at", absl::ToDoubleSeconds(e.at - absl::UnixEpoch())},
               {"event", std::string(JobEventName(e.event))},
               {"to", std::string(JobStateName(e.to))},
               {"epoch", e.epoch},
               {"reason", e.reason}};
  item["from"] = e.from ? json(std::string(JobStateName(*e.from))) : json(nullptr);
  if (e.worker_id) {
    const std::string name = WorkerName(deps, *e.worker_id);
    item["worker"] = name.empty() ? absl::StrCat("worker-", *e.worker_id) : name;
  }
  return item;
}

// GET /api/jobs/ID
Status GetJob(const ServiceDeps& deps, const httplib::Request& req, json* out) {
  ASSIGN_OR_RETURN(int64_t id, PathId(req, "job id"));
  ASSIGN_OR_RETURN(store::JobInfo job, deps.store->GetJob(id));
  ASSIGN_OR_RETURN(std::vector<store::JobEventRow> events, deps.store->Events(id));
  store::ResultFilter filter;
  filter.job_key = job.job_key;
  ASSIGN_OR_RETURN(std::vector<store::JobResultRow> rows, deps.store->Results(filter));
  json event_list = json::array();
  for (const auto& e : events) event_list.push_back(EventJson(deps, e));
  json results = json::array();
  for (const auto& r : rows) {
    results.push_back({{"metric", r.metric},
                       {"value", r.value},
                       {"stderr", r.stderr_value},
                       {"n", r.n},
                       {"provenance", json::parse(r.provenance_json, nullptr, false)}});
  }
  *out = {{"job", JobJson(job, deps)},
          {"events", std::move(event_list)},
          {"results", std::move(results)}};
  return absl::OkStatus();
}

// GET /, /index.html and /assets/NAME: the page and its files (public: they hold no data).
void ServeAsset(const std::string& name, httplib::Response& res) {
  const dashboard::Asset* asset = dashboard::FindAsset(name);
  if (asset == nullptr) {
    res.status = 404;
    res.set_content("not found", "text/plain");
    return;
  }
  res.set_content(std::string(asset->data), std::string(asset->content_type));
}

// Every /api/ request is authenticated before routing; the page and assets hold no data.
httplib::Server::HandlerResponse Authenticate(const ServiceDeps& deps,
                                              const std::vector<std::string>& tokens,
                                              const httplib::Request& req, httplib::Response& res) {
  if (tokens.empty() || req.path.rfind("/api/", 0) != 0) {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  if (BearerTokenMatches(req.get_header_value("Authorization"), tokens)) {
    return httplib::Server::HandlerResponse::Unhandled;
  }
  res.status = 401;
  res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(json{{"error", "missing or invalid 'Authorization: Bearer <token>'"}}.dump(),
                  "application/json");
  deps.metrics->ObserveRpc("http", "UNAUTHENTICATED", 0);
  return httplib::Server::HandlerResponse::Handled;
}

// Runs `route` (filling a JSON answer), maps its Status to an HTTP code, and records it in
// bitsweep_rpc_duration_seconds under one low-cardinality method name per route. `deps` must
// outlive the handler.
httplib::Server::Handler JsonHandler(const ServiceDeps* deps, std::string method, RouteFn route) {
  return [deps, method = std::move(method), route](const httplib::Request& req,
                                                   httplib::Response& res) {
    const absl::Time start = deps->now();
    json out;
    Status st;
    try {
      st = route(*deps, req, &out);
    } catch (const std::exception& e) {  // nlohmann or std: never let it reach httplib
      st = absl::InternalError(e.what());
    }
    if (st.ok()) {
      res.set_content(out.dump(), "application/json");
    } else {
      res.status = HttpCode(st.code());
      res.set_content(json{{"error", std::string(st.message())}}.dump(), "application/json");
    }
    res.set_header("Cache-Control", "no-store");
    deps->metrics->ObserveRpc(method, absl::StatusCodeToString(st.code()),
                              absl::ToDoubleSeconds(deps->now() - start));
  };
}

}  // namespace

StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(const HttpApiOptions& options,
                                                  const ServiceDeps& deps) {
  std::unique_ptr<HttpApi> api(new HttpApi());
  api->deps_ = deps;
  api->tokens_ = SplitTokenList(options.client_token);
  if (!api->tokens_.empty()) {  // viewer tokens only ever come with client tokens
    for (std::string& viewer : SplitTokenList(options.viewer_token)) {
      api->tokens_.push_back(std::move(viewer));
    }
  }
  ASSIGN_OR_RETURN(api->server_,
                   MakeHttpServer({options.tls_cert, options.tls_key, options.tls_ca}, "HTTP"));
  api->Route();
  ASSIGN_OR_RETURN(api->port_, BindHttpServer(*api->server_, options.listen, "http_listen"));
  // The socket is already listening: connections queue until the accept loop runs.
  api->thread_ = ServeHttp(*api->server_);
  return api;
}

void HttpApi::Route() {
  httplib::Server& s = *server_;
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return Authenticate(deps_, tokens_, req, res);
  });
  s.Get("/api/sweeps", JsonHandler(&deps_, "HttpListSweeps", ListSweeps));
  s.Get(R"(/api/sweeps/(\d+))", JsonHandler(&deps_, "HttpGetSweep", GetSweep));
  s.Get("/api/results", JsonHandler(&deps_, "HttpQueryResults", QueryResults));
  s.Get("/api/results/table", JsonHandler(&deps_, "HttpResultsTable", ResultsTableRoute));
  s.Get(R"(/api/jobs/(\d+))", JsonHandler(&deps_, "HttpGetJob", GetJob));
  s.Get("/",
        [](const httplib::Request&, httplib::Response& res) { ServeAsset("index.html", res); });
  s.Get("/index.html",
        [](const httplib::Request&, httplib::Response& res) { ServeAsset("index.html", res); });
  s.Get(R"(/assets/([A-Za-z0-9_.\-]+))", [](const httplib::Request& req, httplib::Response& res) {
    ServeAsset(req.matches[1].str(), res);
  });
}

void HttpApi::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpApi::~HttpApi() { Stop(); }

}  // namespace bitsweep::server
