#include "cli/client_commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/output.h"
#include "cli/report.h"
#include "dashboard/assets.h"
#include "rpc/channel.h"

namespace bitsweep::cli {
namespace {

namespace fs = std::filesystem;

// Watch: how often it polls, and how long it rides out an unreachable coordinator.
constexpr std::chrono::milliseconds kWatchPollInterval{500};
constexpr int kWatchUnavailableRetries = 120;
constexpr std::chrono::seconds kWatchUnavailableDelay{1};

std::string RequestId() {
  std::random_device rd;
  std::mt19937_64 g(
      (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()));
  return absl::StrFormat("%016x%016x", g(), g());
}

rpc::ChannelOptions ChannelOptionsOf(const ServiceFlags& flags) {
  rpc::ChannelOptions channel;
  channel.target = flags.coordinator;
  channel.tls_ca = flags.tls_ca;
  return channel;
}

// One call of a verb: `print(response)` when it succeeds, the error otherwise; the exit code.
template <typename Request, typename Response, typename Print>
int CallAndPrint(Client& client,
                 grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*, const Request&,
                                                               Response*),
                 const Request& request, Print print) {
  Response response;
  if (Status st = client.Call(method, request, &response); !st.ok()) return Fail(st);
  print(response);
  return 0;
}

// Calls a paged listing (`method`) page after page, each page's next_page_token as the next
// request's page_token, and appends every page to `all`: every item, in one response.
template <typename Request, typename Response>
Status CallAllPages(Client& client,
                    grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                                  const Request&, Response*),
                    Request request, Response* all) {
  all->Clear();
  while (true) {
    Response page;
    RETURN_IF_ERROR(client.Call(method, request, &page));
    const std::string next = page.next_page_token();
    all->MergeFrom(page);
    if (next.empty()) break;
    request.set_page_token(next);
  }
  all->clear_next_page_token();
  return absl::OkStatus();
}

// CallAndPrint over every page of a paged listing.
template <typename Request, typename Response, typename Print>
int CallAllPagesAndPrint(Client& client,
                         grpc::Status (v1::Coordinator::Stub::*method)(grpc::ClientContext*,
                                                                       const Request&, Response*),
                         const Request& request, Print print) {
  Response all;
  if (Status st = CallAllPages(client, method, request, &all); !st.ok()) return Fail(st);
  print(all);
  return 0;
}

// kExitJobsFailed, saying so on stderr, when a job of the finished sweep did not succeed.
int FinishedSweepExit(const v1::Sweep& sweep) {
  if (sweep.failed() + sweep.canceled() == 0) return kExitOk;
  std::fprintf(stderr, "bitsweep: sweep %lld: %lld failed, %lld canceled of %lld jobs\n",
               static_cast<long long>(sweep.id()), static_cast<long long>(sweep.failed()),
               static_cast<long long>(sweep.canceled()), static_cast<long long>(sweep.total()));
  return kExitJobsFailed;
}

}  // namespace

Client::Client(const ServiceFlags& flags)
    : token_(flags.token),
      stub_(v1::Coordinator::NewStub(rpc::OpenChannel(ChannelOptionsOf(flags)))) {}

Status ExplainAuthError(const Status& status, bool token_given) {
  if (status.code() != absl::StatusCode::kUnauthenticated) return status;
  return absl::UnauthenticatedError(absl::StrCat(
      status.message(),
      !token_given
          ? ": this coordinator requires a client token and none was given (pass --token TOKEN "
            "or set $BITSWEEP_CLIENT_TOKEN; the coordinator's --client-token names the ones it "
            "accepts)"
          : ": the token from --token or $BITSWEEP_CLIENT_TOKEN was refused (the coordinator "
            "accepts the ones of its --client-token)"));
}

StatusOr<v1::SubmitSweepResponse> Submit(Client& client, const std::string& sweep_file) {
  std::ifstream in(sweep_file, std::ios::binary);
  if (!in) return absl::NotFoundError(sweep_file + ": cannot open sweep file");
  v1::SubmitSweepRequest request;
  request.set_request_id(RequestId());
  request.set_sweep_yaml(std::string(std::istreambuf_iterator<char>(in), {}));
  request.set_source_name(fs::path(sweep_file).filename().string());
  request.set_base_dir(fs::absolute(sweep_file).parent_path().string());
  v1::SubmitSweepResponse response;
  RETURN_IF_ERROR(
      client.Call(&v1::Coordinator::Stub::SubmitSweep, request, &response, kLongCallTimeout));
  return response;
}

StatusOr<v1::Sweep> Watch(Client& client, int64_t sweep_id, bool print, FILE* out,
                          const std::atomic<bool>* interrupted) {
  const bool tty = isatty(fileno(out)) != 0;
  std::string last;
  int unavailable = 0;
  while (true) {
    v1::GetSweepRequest request;
    request.set_sweep_id(sweep_id);
    v1::Sweep sweep;
    const Status status = client.Call(&v1::Coordinator::Stub::GetSweep, request, &sweep);
    if (!status.ok()) {
      if (status.code() == absl::StatusCode::kUnavailable &&
          ++unavailable < kWatchUnavailableRetries) {
        std::this_thread::sleep_for(kWatchUnavailableDelay);
        continue;
      }
      return status;
    }
    unavailable = 0;
    // On a terminal the line (with its elapsed time and estimate) is redrawn at every poll;
    // elsewhere a new line is written only when the counts change.
    const std::string line = SweepLine(sweep);
    if (print && (tty || line != last)) {
      const std::string timing = SweepTiming(sweep, absl::ToUnixSeconds(absl::Now()));
      std::fprintf(out, tty ? "\r%s%s\033[K" : "%s%s\n", line.c_str(), timing.c_str());
      std::fflush(out);
      last = line;
    }
    if (sweep.finished()) {
      if (print && tty) std::fprintf(out, "\n");
      return sweep;
    }
    if (interrupted != nullptr && *interrupted) return absl::CancelledError("interrupted");
    std::this_thread::sleep_for(kWatchPollInterval);
  }
}

int RunSubmit(Client& client, const ServiceFlags& f) {
  auto r = Submit(client, f.sweep_file);
  if (!r.ok()) return Fail(r.status());
  std::printf("%s\n", SubmitLine(*r).c_str());
  for (const auto& s : r->skipped()) {
    std::printf("  skipped %s: %s\n", s.description().c_str(), s.reason().c_str());
  }
  if (f.wait) {
    auto w = Watch(client, r->sweep().id(), true, stdout, nullptr);
    if (!w.ok()) return Fail(w.status());
    return FinishedSweepExit(*w);
  }
  return 0;
}

int RunWatch(Client& client, const ServiceFlags& f) {
  auto w = Watch(client, f.sweep_id, true, stdout, nullptr);
  return w.ok() ? FinishedSweepExit(*w) : Fail(w.status());
}

int RunStatus(Client& client, const ServiceFlags& f) {
  const std::string& format = f.status_output;
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  auto print_lines = [](const std::vector<std::string>& lines) {
    for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  };
  if (f.sweep_id == 0) {
    return CallAllPagesAndPrint(client, &v1::Coordinator::Stub::ListSweeps, v1::ListSweepsRequest(),
                                [&](const v1::ListSweepsResponse& response) {
                                  if (format == "json") {
                                    std::fputs(SweepsJson(response, now).c_str(), stdout);
                                    return;
                                  }
                                  if (format == "wide") {
                                    print_lines(SweepLinesWide(response, now));
                                    return;
                                  }
                                  const std::vector<std::string> lines = SweepLines(response);
                                  for (int i = 0; i < response.sweeps_size(); ++i) {
                                    std::printf("%s%s\n", lines[i].c_str(),
                                                SweepTiming(response.sweeps(i), now).c_str());
                                  }
                                });
  }
  v1::ListJobsRequest request;
  request.set_sweep_id(f.sweep_id);
  return CallAllPagesAndPrint(client, &v1::Coordinator::Stub::ListJobs, request,
                              [&](const v1::ListJobsResponse& response) {
                                if (format == "json") {
                                  std::fputs(JobsJson(response, now).c_str(), stdout);
                                } else if (format == "wide") {
                                  print_lines(JobLinesWide(response, now));
                                } else {
                                  print_lines(JobLines(response));
                                }
                              });
}

int RunDescribe(Client& client, const ServiceFlags& f) {
  v1::DescribeJobRequest request;
  request.set_job_id(f.job_id);
  return CallAndPrint(client, &v1::Coordinator::Stub::DescribeJob, request,
                      [&f](const v1::JobDescription& d) {
                        if (f.describe_output == "json") {
                          std::string text;
                          google::protobuf::util::JsonPrintOptions options;
                          options.add_whitespace = true;
                          options.preserve_proto_field_names = true;
                          options.always_print_primitive_fields = true;
                          (void)google::protobuf::util::MessageToJsonString(d, &text, options);
                          std::printf("%s\n", text.c_str());
                          return;
                        }
                        std::fputs(DescribeJobText(d, absl::ToUnixSeconds(absl::Now())).c_str(),
                                   stdout);
                      });
}

int RunCancel(Client& client, const ServiceFlags& f) {
  if (f.job_id > 0) {
    v1::CancelJobRequest request;
    request.set_job_id(f.job_id);
    return CallAndPrint(client, &v1::Coordinator::Stub::CancelJob, request, [&f](const v1::Job&) {
      std::printf("job %lld canceled\n", static_cast<long long>(f.job_id));
    });
  }
  v1::CancelSweepRequest request;
  request.set_sweep_id(f.sweep_id);
  return CallAndPrint(
      client, &v1::Coordinator::Stub::CancelSweep, request,
      [](const v1::Sweep& sweep) { std::printf("%s\n", SweepLine(sweep).c_str()); });
}

int PrintResults(Client& client, int64_t sweep_id, const std::string& format,
                 const std::string& output, bool percent) {
  v1::QueryResultsRequest request;
  request.set_sweep_id(sweep_id);
  v1::QueryResultsResponse response;  // every page's jobs
  Status st = CallAllPages(client, &v1::Coordinator::Stub::QueryResults, request, &response);
  if (!st.ok()) return Fail(st);
  st = WriteOutput(output, RenderResults(response, format, sweep_id, percent));
  if (!st.ok()) return Fail(st);
  if (response.jobs_size() == 0) {
    std::fprintf(stderr, "bitsweep: no results%s\n",
                 sweep_id > 0 ? absl::StrFormat(" for sweep %d", sweep_id).c_str() : "");
    return kExitNoResults;
  }
  return kExitOk;
}

namespace {

// Everything the report reads of one sweep: the sweep, every page of its results and its jobs.
Status FetchReportSweep(Client& client, int64_t sweep_id, ReportSweep* out) {
  v1::GetSweepRequest get;
  get.set_sweep_id(sweep_id);
  RETURN_IF_ERROR(client.Call(&v1::Coordinator::Stub::GetSweep, get, &out->sweep));
  v1::QueryResultsRequest query;
  query.set_sweep_id(sweep_id);
  RETURN_IF_ERROR(CallAllPages(client, &v1::Coordinator::Stub::QueryResults, query, &out->results));
  v1::ListJobsRequest list;
  list.set_sweep_id(sweep_id);
  return CallAllPages(client, &v1::Coordinator::Stub::ListJobs, list, &out->jobs);
}

}  // namespace

int RunReport(Client& client, const ServiceFlags& f) {
  ReportSweep sweep, compare;
  if (Status st = FetchReportSweep(client, f.sweep_id, &sweep); !st.ok()) return Fail(st);
  if (f.compare_id > 0) {
    if (Status st = FetchReportSweep(client, f.compare_id, &compare); !st.ok()) return Fail(st);
  }
  const ReportSweep* other = f.compare_id > 0 ? &compare : nullptr;
  const std::string html =
      dashboard::RenderPaperReport(ReportTitle(sweep, other), ReportJson(sweep, other));
  if (Status st = WriteOutput(f.output, html); !st.ok()) return Fail(st);
  // As `results`: the report is written (it lists the failed and skipped jobs), and the exit
  // code says that nothing was stored.
  if (sweep.results.jobs_size() == 0) {
    std::fprintf(stderr, "bitsweep: no results for sweep %lld\n",
                 static_cast<long long>(f.sweep_id));
    return kExitNoResults;
  }
  return kExitOk;
}

int RunLogs(Client& client, const ServiceFlags& f) {
  v1::GetJobLogRequest request;
  request.set_job_id(f.job_id);
  v1::JobLog log;
  if (Status st = client.Call(&v1::Coordinator::Stub::GetJobLog, request, &log); !st.ok()) {
    return Fail(st);
  }
  if (!log.stored()) {
    std::fprintf(stderr,
                 "bitsweep: job %lld has no stored output (no attempt of it has ended yet, or "
                 "its job process printed nothing)\n",
                 static_cast<long long>(f.job_id));
    return kExitNoResults;
  }
  std::fprintf(stderr, "bitsweep: job %lld, attempt %d (epoch %lld), stored %s\n",
               static_cast<long long>(f.job_id), log.attempt(),
               static_cast<long long>(log.epoch()), UnixTime(log.stored_at()).c_str());
  std::fputs(log.text().c_str(), stdout);
  if (!log.text().empty() && log.text().back() != '\n') std::fputs("\n", stdout);
  return kExitOk;
}

}  // namespace bitsweep::cli
