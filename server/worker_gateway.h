// WorkerGateway: the worker-facing RPCs of proto/bitsweep/v1/worker.proto. Every call about a
// job is fenced by (job_id, lease_epoch) in the store: a stale epoch is FAILED_PRECONDITION.
// Register persists the worker (capabilities, labels, artifacts) in the store's workers table and
// Lease reads them from there, so a restarted coordinator serves known workers at once; a worker
// id the database does not know gets NOT_FOUND from Lease and registers again.
// Heartbeat progress and phase are kept in memory (JobBoard) for ListJobs. Thread-safe.
#pragma once

#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/rpc_guard.h"
#include "server/service_deps.h"

namespace bitsweep::server {

class WorkerGatewayService final : public bitsweep::v1::WorkerGateway::Service {
 public:
  // `worker_token` empty: no authentication.
  WorkerGatewayService(ServiceDeps deps, std::string worker_token)
      : deps_(std::move(deps)), guard_(deps_.metrics, std::move(worker_token), deps_.now) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override;
  grpc::Status Lease(grpc::ServerContext* context, const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status Complete(grpc::ServerContext* context, const v1::CompleteRequest* request,
                        v1::CompleteResponse* response) override;
  grpc::Status Fail(grpc::ServerContext* context, const v1::FailRequest* request,
                    v1::FailResponse* response) override;

 private:
  ServiceDeps deps_;
  RpcGuard guard_;
};

}  // namespace bitsweep::server
