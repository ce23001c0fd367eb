// Helpers shared by the coordinator tests (tests/server/coordinator*_test.cc): a coordinator on
// loopback over a fresh database, and client and worker calls that REQUIRE success.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "bitsweep/v1/worker.grpc.pb.h"
#include "server/coordinator.h"

namespace bitsweep::server::coordinator_test {

// rtn w4 and the fp baseline from the first entry (billm w4 makes no sense: skipped), billm w1
// from the second: 3 jobs, 1 skipped combination. The model path need not exist.
inline constexpr const char* kSweepYaml = R"(name: small
priority: 5
max_attempts: 2
models: [/nonexistent/qwen3-tiny]
methods:
  - method: [rtn, billm]
    wbits: [4]
  - method: billm
tasks: [wikitext2]
)";

struct Running {
  std::unique_ptr<Coordinator> coordinator;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Coordinator::Stub> client;
  std::unique_ptr<v1::WorkerGateway::Stub> worker;
};

// `db` "": a fresh database; otherwise that one (a restarted coordinator). `check_inputs`
// overrides config.check_inputs: off by default, since the harness's models do not exist.
Running Start(ServerConfig config = {}, bool with_metrics = false, const std::string& db = "",
              bool check_inputs = false);
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token = "");
// SubmitSweep; REQUIREs success unless `status_out` is given, which receives the status.
v1::SubmitSweepResponse Submit(Running& r, const std::string& request_id, const std::string& yaml,
                               grpc::Status* status_out = nullptr);
// Register; returns the worker id.
int64_t RegisterWorker(Running& r, const std::string& name, int devices = 1, int max_tp = 1);
v1::LeaseResponse Lease(Running& r, int64_t worker_id);
// Complete with one "ppl" metric of value `ppl`.
grpc::Status Complete(Running& r, int64_t worker_id, int64_t job_id, int64_t epoch, double ppl);

}  // namespace bitsweep::server::coordinator_test
