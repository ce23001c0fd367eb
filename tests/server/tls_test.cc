// TLS and mutual TLS on the coordinator's gRPC port, with certificates made by the openssl CLI,
// and the plaintext health-only server (--health-listen) beside a TLS port.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/time/clock.h"
#include "bitsweep/v1/coordinator.grpc.pb.h"
#include "server/coordinator.h"
#include "tests/testing/certs.h"
#include "tests/testing/local_pg.h"
#include "tests/testing/paths.h"
#include "tests/testing/process.h"
#include "tests/testing/rpc.h"

namespace bitsweep::server {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using testing::MakeCertificates;

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
  config.check_inputs = false;  // the sweeps here name models that do not exist
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
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = "host=127.0.0.1 port=1";
  config.listen = "127.0.0.1:0";
  config.tls_cert = "/nonexistent/server.pem";
  config.tls_key = "/nonexistent/server.key";
  auto coordinator = Coordinator::Start(config);
  CHECK(coordinator.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(coordinator.status().message().find("tls_cert") != absl::string_view::npos);
}

using testing::Answer;
using testing::HealthCheck;
using testing::kServing;
using testing::UnaryCall;
const std::string kNotServing("\x08\x02", 2);  // HealthCheckResponse{status: NOT_SERVING}

// A coordinator with TLS on its gRPC port and tokens (as in production), the health server on a
// free loopback port; its certificates in `dir`.
std::unique_ptr<Coordinator> StartWithTlsAndHealth(const std::string& dir) {
  INFO(ReadFile(dir + "/openssl.log"));
  REQUIRE(MakeCertificates(dir));
  ServerConfig config;
  config.check_inputs = false;  // the sweeps here name models that do not exist
  config.db = testing::FreshDatabase();
  config.listen = "127.0.0.1:0";
  config.metrics_listen = "";
  config.health_listen = "127.0.0.1:0";
  config.client_token = "client-secret";
  config.worker_token = "worker-secret";
  config.tls_cert = dir + "/server.pem";
  config.tls_key = dir + "/server.key";
  auto coordinator = Coordinator::Start(config);
  INFO(coordinator.status().ToString());
  REQUIRE(coordinator.ok());
  REQUIRE((*coordinator)->health_port() > 0);
  REQUIRE((*coordinator)->health_port() != (*coordinator)->port());
  return std::move(coordinator).value();
}

std::shared_ptr<grpc::Channel> Plaintext(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

TEST_CASE("with TLS on the gRPC port a plaintext health check on the health port answers SERVING",
          "[pg][grpc]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl command is not installed");
    return;
  }
  const std::string dir = testing::ScratchDir("server-health-serving");
  auto coordinator = StartWithTlsAndHealth(dir);
  const Answer health = HealthCheck(Plaintext(coordinator->health_port()));
  INFO(health.status.error_message());
  REQUIRE(health.status.ok());
  CHECK(health.bytes == kServing);
  // The same plaintext check on the TLS port gets no answer: that is why the health port exists.
  CHECK_FALSE(HealthCheck(Plaintext(coordinator->port())).status.ok());
}

TEST_CASE("the health port serves no Coordinator, WorkerGateway or reflection RPC", "[pg][grpc]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl command is not installed");
    return;
  }
  const std::string dir = testing::ScratchDir("server-health-only");
  auto coordinator = StartWithTlsAndHealth(dir);
  auto channel = Plaintext(coordinator->health_port());
  for (const char* method :
       {"/bitsweep.v1.Coordinator/ListSweeps", "/bitsweep.v1.WorkerGateway/Register",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"}) {
    INFO(method);
    CHECK(UnaryCall(channel, method, "").status.error_code() == grpc::StatusCode::UNIMPLEMENTED);
  }
  // With the token, through the generated stub, too.
  auto client = v1::Coordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", "Bearer client-secret");
  v1::ListSweepsResponse resp;
  CHECK(client->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp).error_code() ==
        grpc::StatusCode::UNIMPLEMENTED);
}

// psql's unaligned, tuples-only output of `sql` on database `db` (a conninfo).
std::string Psql(const std::string& db, const std::string& sql) {
  FILE* pipe = ::popen(("psql '" + db + "' -X -qtAc \"" + sql + "\" 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  ::pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Polls `sql` until it prints `want`; false after 20 s.
bool PsqlUntil(const std::string& db, const std::string& sql, const std::string& want) {
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (Psql(db, sql) != want) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

TEST_CASE(
    "once Shutdown begins the health port answers NOT_SERVING while RPCs drain, and it is closed "
    "when Shutdown ends",
    "[pg][grpc]") {
  if (std::system("openssl version > /dev/null 2>&1") != 0 ||
      std::system("psql --version > /dev/null 2>&1") != 0) {
    WARN("skipped: the openssl or psql command is not installed");
    return;
  }
  const std::string dir = testing::ScratchDir("server-health-shutdown");
  auto coordinator = StartWithTlsAndHealth(dir);
  const std::string db = coordinator->config().db;
  auto health = Plaintext(coordinator->health_port());
  REQUIRE(HealthCheck(health).bytes == kServing);

  // Keep the main server draining: a ListSweeps in flight, blocked on a table lock held by a
  // psql session until the test ends it.
  const std::string lock_sql =
      "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = "
      "'sweeps' AND l.mode = 'AccessExclusiveLock' AND l.granted";
  const pid_t locker = testing::Spawn(
      {"/bin/sh", "-c",
       "exec psql '" + db +
           "' -X -q -c 'BEGIN' -c 'LOCK TABLE sweeps IN ACCESS EXCLUSIVE MODE' -c 'SELECT "
           "pg_sleep(120)'"},
      dir + "/locker.log");
  struct Unlock {
    std::string db;
    pid_t pid;
    ~Unlock() {  // ends the locking session, so nothing waits out its pg_sleep
      Psql(db,
           "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
           "'SELECT pg_sleep%'");
      testing::Signal(pid, SIGKILL);
    }
  } unlock{db, locker};
  REQUIRE(PsqlUntil(db, lock_sql, "1"));

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ReadFile(dir + "/ca.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto main_channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(coordinator->port()),
                                                grpc::SslCredentials(tls), args);
  grpc::Status listed;
  std::thread list([&] {
    auto client = v1::Coordinator::NewStub(main_channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    ctx.AddMetadata("authorization", "Bearer client-secret");
    v1::ListSweepsResponse resp;
    listed = client->ListSweeps(&ctx, v1::ListSweepsRequest(), &resp);
  });
  const bool waiting = PsqlUntil(
      db,
      "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = "
      "'sweeps' AND NOT l.granted",
      "1");
  CHECK(waiting);

  std::thread stopper([&] { coordinator->Shutdown(absl::Seconds(30)); });
  Answer during;
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  do {
    during = HealthCheck(health, 2);
  } while (during.status.ok() && during.bytes == kServing && absl::Now() < give_up);
  INFO(during.status.error_code() << " " << during.status.error_message());
  CHECK(during.status.ok());
  CHECK(during.bytes == kNotServing);
  CHECK(HealthCheck(health, 2).bytes == kNotServing);  // and it stays so while RPCs drain

  Psql(db,
       "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE "
       "'SELECT pg_sleep%'");
  list.join();
  INFO(listed.error_message());
  CHECK(listed.ok());  // the in-flight call was let finish
  coordinator->Wait();
  stopper.join();
  const Answer after = HealthCheck(health, 2);
  CHECK(after.status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace bitsweep::server
