// CoordinatorService: the client-facing RPCs of proto/bitsweep/v1/coordinator.proto. Each
// handler validates the request, calls the JobStore and converts the status 1:1; sweep YAML is
// parsed and expanded here (common/sweep.h), so nothing is stored for an invalid sweep.
// Thread-safe (the store is; the service keeps no state of its own).
#pragma once

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "server/rpc_guard.h"
#include "server/service_deps.h"

namespace bitsweep::server {

class CoordinatorService final : public bitsweep::v1::Coordinator::Service {
 public:
  // `client_token` empty: no authentication. `viewer_token` (ServerConfig::viewer_token) is
  // accepted by the read RPCs only.
  CoordinatorService(ServiceDeps deps, const std::string& client_token,
                     const std::string& viewer_token = "")
      : deps_(std::move(deps)), guard_(deps_.metrics, client_token, deps_.now, viewer_token) {}

  grpc::Status SubmitSweep(grpc::ServerContext* context, const v1::SubmitSweepRequest* request,
                           v1::SubmitSweepResponse* response) override;
  grpc::Status GetSweep(grpc::ServerContext* context, const v1::GetSweepRequest* request,
                        v1::Sweep* response) override;
  grpc::Status ListSweeps(grpc::ServerContext* context, const v1::ListSweepsRequest* request,
                          v1::ListSweepsResponse* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status WatchSweep(grpc::ServerContext* context, const v1::GetSweepRequest* request,
                          grpc::ServerWriter<v1::Sweep>* writer) override;
  grpc::Status CancelSweep(grpc::ServerContext* context, const v1::CancelSweepRequest* request,
                           v1::Sweep* response) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status QueryResults(grpc::ServerContext* context, const v1::QueryResultsRequest* request,
                            v1::QueryResultsResponse* response) override;
  grpc::Status DescribeJob(grpc::ServerContext* context, const v1::DescribeJobRequest* request,
                           v1::JobDescription* response) override;
  grpc::Status GetJobLog(grpc::ServerContext* context, const v1::GetJobLogRequest* request,
                         v1::JobLog* response) override;

 private:
  ServiceDeps deps_;
  RpcGuard guard_;
};

}  // namespace bitsweep::server
