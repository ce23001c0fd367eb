// TLS and mutual TLS on the coordinator's gRPC port, with certificates made by the openssl CLI.
#include <grpcpp/grpcpp.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"

namespace bitsweep::server {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A CA, a server certificate for localhost / 127.0.0.1 and a client certificate, in `dir`.
// False when openssl is missing or fails.
bool MakeCertificates(const std::string& dir) {
  std::ofstream(dir + "/server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  const std::string script =
      "cd '" + dir + "' && " + "openssl req -x509" + ec +
      "-keyout ca.key -out ca.pem -days 2 -subj /CN=bitsweep-test-ca && " + "openssl req" + ec +
      "-keyout server.key -out server.csr -subj /CN=localhost && " +
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-extfile server.ext -out server.pem && " +
      "openssl req" + ec + "-keyout client.key -out client.csr -subj /CN=worker && " +
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
      "-out client.pem";
  return std::system(("(" + script + ") > '" + dir + "/openssl.log' 2>&1").c_str()) == 0;
}

grpc::Status ListSweeps(const std::string& target, const grpc::SslCredentialsOptions& options) {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto channel = grpc::CreateCustomChannel(target, grpc::SslCredentials(options), args);
  auto stub = v1::Coordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListSweepsResponse resp;
  return stub->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp);
}

TEST_CASE("with a CA configured the coordinator requires and verifies client certificates",
          "[pg][grpc]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl command is not installed");
    return;
  }
  const std::string dir = testing::ScratchDir("server-tls");
  INFO(ReadFile(dir + "/openssl.log"));
  REQUIRE(MakeCertificates(dir));

  ServerConfig config;
  config.db = testing::FreshDatabase();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.tls_cert = dir + "/server.pem";
  config.tls_key = dir + "/server.key";
  config.tls_ca = dir + "/ca.pem";
  auto coordinator = Coordinator::Start(config);
  INFO(coordinator.status().ToString());
  REQUIRE(coordinator.ok());
  const std::string target = "127.0.0.1:" + std::to_string((*coordinator)->port());

  grpc::SslCredentialsOptions with_cert;
  with_cert.pem_root_certs = ReadFile(dir + "/ca.pem");
  with_cert.pem_private_key = ReadFile(dir + "/client.key");
  with_cert.pem_cert_chain = ReadFile(dir + "/client.pem");
  const grpc::Status ok = ListSweeps(target, with_cert);
  INFO(ok.error_message());
  CHECK(ok.ok());

  grpc::SslCredentialsOptions without_cert;
  without_cert.pem_root_certs = with_cert.pem_root_certs;
  CHECK(ListSweeps(target, without_cert).error_code() == grpc::StatusCode::UNAVAILABLE);

  auto plaintext =
      v1::Coordinator::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ListSweepsResponse resp;
  CHECK_FALSE(plaintext->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp).ok());
}

TEST_CASE("a missing TLS key file is INVALID_ARGUMENT naming the field", "[pg]") {
  ServerConfig config;
  config.db = "host=127.0.0.1 port=1";
  config.listen = "127.0.0.1:0";
  config.tls_cert = "/nonexistent/server.pem";
  config.tls_key = "/nonexistent/server.key";
  auto coordinator = Coordinator::Start(config);
  CHECK(coordinator.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(coordinator.status().message().find("tls_cert") != absl::string_view::npos);
}

}  // namespace
}  // namespace bitsweep::server
