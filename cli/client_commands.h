// The `bitsweep` verbs that talk to a running coordinator over gRPC: submit, watch, status,
// results, cancel. Each prints what the user asked for (cli/output.h) and returns the process's
// exit code; `bitsweep local` reuses Submit, Watch and PrintResults on the coordinator it starts.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "cli/service_commands.h"
#include "common/status.h"
#include "rpc/call_context.h"
#include "rpc/status_convert.h"

namespace bitsweep::cli {

// Submitting a sweep (expanding it, writing every job) may take longer than an ordinary call.
// Listings (status, results) are read a page per call, each an ordinary call.
inline constexpr absl::Duration kLongCallTimeout = absl::Seconds(120);

// An UNAUTHENTICATED `status` with where the client token comes from (--token,
// $BITSWEEP_CLIENT_TOKEN): that none was given (`token_given` false), or that the one given was
// refused. Other statuses as they are.
Status ExplainAuthError(const Status& status, bool token_given);

// The coordinator's stub with the flags' channel (TLS) and token.
class Client {
 public:
  explicit Client(const ServiceFlags& flags);

  // One unary call (`method`: &v1::Coordinator::Stub::GetSweep, ...) with the bearer token and
  // a deadline `timeout` from now (none when zero).
  template <typename Method, typename Request, typename Response>
  Status Call(Method method, const Request& request, Response* response,
              absl::Duration timeout = rpc::kDefaultCallTimeout) {
    grpc::ClientContext context;
    rpc::PrepareCall(&context, token_, timeout);
    return ExplainAuthError(
        rpc::FromGrpcStatus((stub_.get()->*method)(&context, request, response)), !token_.empty());
  }

 private:
  std::string token_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
};

// SubmitSweep with the file's text and a fresh request id. NOT_FOUND when it cannot be read.
StatusOr<v1::SubmitSweepResponse> Submit(Client& client, const std::string& sweep_file);

// Polls GetSweep (robust across coordinator restarts: UNAVAILABLE is retried for two minutes)
// until the sweep is finished, printing its line to `out` when it changes (in place on a
// terminal). CANCELLED once *interrupted (may be null) is set.
StatusOr<v1::Sweep> Watch(Client& client, int64_t sweep_id, bool print, FILE* out,
                          const std::atomic<bool>* interrupted);

// The verbs. `flags` carries their arguments (sweep file, ids, --format, --output, --wait).
int RunSubmit(Client& client, const ServiceFlags& flags);
int RunWatch(Client& client, const ServiceFlags& flags);
int RunStatus(Client& client, const ServiceFlags& flags);
int RunDescribe(Client& client, const ServiceFlags& flags);
// `bitsweep logs JOB`: the job's stored output on stdout, which attempt it came from on stderr;
// kExitNoResults (4) when none is stored (no attempt ended yet, or it printed nothing).
int RunLogs(Client& client, const ServiceFlags& flags);
int RunCancel(Client& client, const ServiceFlags& flags);
// `bitsweep report SWEEP_ID [--compare B] [--out FILE]`: the paper's report (cli/report.h) as
// one self-contained HTML file (dashboard::RenderPaperReport).
int RunReport(Client& client, const ServiceFlags& flags);
// Every page of QueryResults of `sweep_id` (0: every sweep) rendered in `format` (accuracies in
// percent when `percent`: cli/output.h RenderResults), to `output` ("": stdout).
int PrintResults(Client& client, int64_t sweep_id, const std::string& format,
                 const std::string& output, bool percent = false);

}  // namespace bitsweep::cli
