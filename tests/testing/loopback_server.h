// An in-process gRPC server on 127.0.0.1 (a free port) for one service, for the tests of the
// clients in rpc/ and worker/ that need a peer but no coordinator. Header-only, so that only the
// test binaries that link gRPC include it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace bitsweep::testing {

class LoopbackServer {
 public:
  // Serves `service` (which must outlive the server) with `credentials` (plaintext by default).
  explicit LoopbackServer(
      grpc::Service* service,
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
    builder.RegisterService(service);
    server_ = builder.BuildAndStart();
  }
  ~LoopbackServer() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  // 0 when the server did not start.
  int port() const { return server_ ? port_ : 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace bitsweep::testing
