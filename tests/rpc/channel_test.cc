// rpc/channel.h and rpc/call_context.h against an in-process server on loopback: what a call
// carries (token, deadline) and the channel's plaintext and (mutual) TLS modes.
#include "rpc/channel.h"

#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iterator>
#include <mutex>

#include "bitsweep/v1/worker.grpc.pb.h"
#include "rpc/call_context.h"
#include "rpc/status_convert.h"
#include "tests/testing/certs.h"
#include "tests/testing/loopback_server.h"
#include "tests/testing/paths.h"

namespace bitsweep::rpc {
namespace {

// Answers Register with worker id 1 and remembers the authorization metadata it saw.
class RecordingGateway final : public v1::WorkerGateway::Service {
 public:
  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest*,
                        v1::RegisterResponse* response) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = context->client_metadata().find(kAuthorizationKey);
    authorization_ = it == context->client_metadata().end()
                         ? "(none)"
                         : std::string(it->second.data(), it->second.size());
    response->set_worker_id(1);
    return grpc::Status::OK;
  }
  std::string authorization() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorization_;
  }

 private:
  std::mutex mu_;
  std::string authorization_;
};

Status CallRegister(const ChannelOptions& options, const std::string& token) {
  auto stub = v1::WorkerGateway::NewStub(OpenChannel(options));
  grpc::ClientContext context;
  PrepareCall(&context, token, absl::Seconds(10));
  v1::RegisterResponse response;
  return FromGrpcStatus(stub->Register(&context, v1::RegisterRequest(), &response), "Register");
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("a prepared call carries the bearer token, and none without one", "[grpc]") {
  RecordingGateway gateway;
  testing::LoopbackServer server(&gateway);
  REQUIRE(server.port() > 0);
  ChannelOptions options;
  options.target = server.address();
  REQUIRE(CallRegister(options, "s3cret").ok());
  CHECK(gateway.authorization() == "Bearer s3cret");
  REQUIRE(CallRegister(options, "").ok());
  CHECK(gateway.authorization() == "(none)");
}

TEST_CASE("a prepared call has a deadline from now, and none for a zero timeout") {
  grpc::ClientContext timed;
  const auto before = std::chrono::system_clock::now();
  PrepareCall(&timed, "", absl::Seconds(30));
  CHECK(timed.deadline() >= before + std::chrono::seconds(30));
  CHECK(timed.deadline() <= std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::ClientContext untimed;
  PrepareCall(&untimed, "", absl::ZeroDuration());
  CHECK(untimed.deadline() == std::chrono::system_clock::time_point::max());
}

TEST_CASE("a TLS channel with the CA and a client certificate reaches a mutual-TLS server",
          "[grpc]") {
  const std::string dir = testing::ScratchDir("rpc_channel_tls");
  if (!testing::MakeCertificates(dir)) {
    WARN("openssl is not available: " << ReadFile(dir + "/openssl.log"));
    return;
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ReadFile(dir + "/ca.pem");
  ssl.pem_key_cert_pairs.push_back({ReadFile(dir + "/server.key"), ReadFile(dir + "/server.pem")});
  RecordingGateway gateway;
  testing::LoopbackServer server(&gateway, grpc::SslServerCredentials(ssl));
  REQUIRE(server.port() > 0);

  ChannelOptions options;
  options.target = server.address();  // the server certificate names 127.0.0.1
  options.tls_ca = dir + "/ca.pem";
  options.tls_cert = dir + "/client.pem";
  options.tls_key = dir + "/client.key";
  const Status with_certificate = CallRegister(options, "t");
  INFO(with_certificate.ToString());
  CHECK(with_certificate.ok());

  options.tls_cert.clear();
  options.tls_key.clear();
  CHECK(CallRegister(options, "t").code() == absl::StatusCode::kUnavailable);
  ChannelOptions plaintext;
  plaintext.target = server.address();
  CHECK(CallRegister(plaintext, "t").code() == absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace bitsweep::rpc
