#include "server/server_config.h"

#include <catch2/catch.hpp>

namespace bitsweep::server {
namespace {

ServerConfig Valid() {
  ServerConfig c;
  c.db = "host=127.0.0.1 dbname=x";
  return c;
}

TEST_CASE("loopback addresses are recognised in every spelling") {
  CHECK(IsLoopbackAddress("127.0.0.1:50051"));
  CHECK(IsLoopbackAddress("127.1.2.3:0"));
  CHECK(IsLoopbackAddress("localhost:1"));
  CHECK(IsLoopbackAddress("[::1]:50051"));
  CHECK_FALSE(IsLoopbackAddress("0.0.0.0:50051"));
  CHECK_FALSE(IsLoopbackAddress("[::]:50051"));
  CHECK_FALSE(IsLoopbackAddress("10.0.0.5:50051"));
}

TEST_CASE("the loopback check parses addresses: a name that merely starts with 127. is remote, "
          "every spelling of a loopback address is not") {
  CHECK_FALSE(IsLoopbackAddress("127.example.com:50051"));
  CHECK_FALSE(IsLoopbackAddress("127.0.0.1.nip.io:50051"));
  CHECK_FALSE(IsLoopbackAddress("127.0.0.256:50051"));
  CHECK_FALSE(IsLoopbackAddress("localhost.example.com:1"));
  CHECK_FALSE(IsLoopbackAddress("[::2]:1"));
  CHECK_FALSE(IsLoopbackAddress("[::ffff:10.0.0.1]:1"));
  CHECK(IsLoopbackAddress("127.255.255.254:1"));
  CHECK(IsLoopbackAddress("LOCALHOST:1"));
  CHECK(IsLoopbackAddress("[0:0:0:0:0:0:0:1]:1"));
  CHECK(IsLoopbackAddress("[::ffff:127.0.0.1]:1"));
  ServerConfig c;
  c.db = "x";
  c.listen = "127.example.com:50051";
  const Status s = c.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("not a loopback address") != absl::string_view::npos);
}

TEST_CASE("the default config is valid once a database is given and listens on loopback") {
  ServerConfig c = Valid();
  CHECK(c.Validate().ok());
  CHECK(c.ListensOnLoopbackOnly());
  c.db.clear();
  CHECK(c.Validate().message().find("db") != absl::string_view::npos);
  c = Valid();
  c.db_connections = 0;
  CHECK(c.Validate().message().find("db_connections") != absl::string_view::npos);
  c = Valid();
  CHECK(c.max_jobs_per_sweep == 100000);
  c.max_jobs_per_sweep = 0;
  CHECK(c.Validate().message() == "max_jobs_per_sweep: must be >= 1");
}

TEST_CASE("a remote listen address needs both tokens, and TLS unless insecure_allow_remote, "
          "which never waives the tokens") {
  ServerConfig c = Valid();
  c.listen = "0.0.0.0:50051";
  Status s = c.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("listen") != absl::string_view::npos);
  c.tls_cert = "cert.pem";
  c.tls_key = "key.pem";
  c.client_token = "c";
  CHECK_FALSE(c.Validate().ok());  // the worker token is missing
  c.worker_token = "w";
  CHECK(c.Validate().ok());
  ServerConfig insecure = Valid();
  insecure.listen = "0.0.0.0:50051";
  insecure.insecure_allow_remote = true;
  s = insecure.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() ==
        "listen: '0.0.0.0:50051' is not a loopback address; remote listening needs both "
        "client_token and worker_token (insecure_allow_remote waives only TLS)");
  insecure.client_token = "c";
  CHECK_FALSE(insecure.Validate().ok());  // still the worker token
  insecure.worker_token = "w";
  CHECK(insecure.Validate().ok());  // plaintext, on a trusted network, with tokens
}

TEST_CASE(
    "a token list splits on commas and an empty entry or whitespace is rejected naming the field") {
  CHECK(SplitTokenList("").empty());
  CHECK(SplitTokenList("a") == std::vector<std::string>{"a"});
  CHECK(SplitTokenList("old,new") == std::vector<std::string>{"old", "new"});
  ServerConfig c = Valid();
  c.client_token = "old,new";
  c.worker_token = "w";
  CHECK(c.Validate().ok());
  c.client_token = "old,";
  CHECK(c.Validate().message().find("client_token") != absl::string_view::npos);
  c.client_token = "old";
  c.worker_token = "w1,,w2";
  CHECK(c.Validate().message().find("worker_token") != absl::string_view::npos);
  c.worker_token = "w1\n";
  CHECK(c.Validate().message().find("worker_token") != absl::string_view::npos);
}

TEST_CASE("half-configured TLS and malformed addresses are rejected naming the field") {
  ServerConfig c = Valid();
  c.tls_cert = "cert.pem";
  CHECK(c.Validate().message().find("tls_key") != absl::string_view::npos);
  c = Valid();
  c.tls_ca = "ca.pem";
  CHECK(c.Validate().message().find("tls_ca") != absl::string_view::npos);
  c = Valid();
  c.listen = "127.0.0.1";
  CHECK(c.Validate().message().find("listen") != absl::string_view::npos);
  c = Valid();
  c.metrics_listen = "127.0.0.1:99999";
  CHECK(c.Validate().message().find("metrics_listen") != absl::string_view::npos);
  c = Valid();
  c.lease_ttl = absl::ZeroDuration();
  CHECK(c.Validate().message().find("lease_ttl") != absl::string_view::npos);
}

TEST_CASE("a remote dashboard address needs the client token, and TLS unless "
          "insecure_allow_remote") {
  ServerConfig c = Valid();
  c.http_listen = "127.0.0.1:0";
  CHECK(c.Validate().ok());
  c.http_listen = "0.0.0.0:8080";
  CHECK(c.Validate().message().find("http_listen") != absl::string_view::npos);
  c.tls_cert = "cert.pem";
  c.tls_key = "key.pem";
  CHECK(c.Validate().message().find("http_listen") != absl::string_view::npos);
  c.client_token = "secret";
  CHECK(c.Validate().ok());
  c = Valid();
  c.http_listen = "0.0.0.0:8080";
  c.insecure_allow_remote = true;
  CHECK(c.Validate().message() ==
        "http_listen: '0.0.0.0:8080' is not a loopback address; a remote dashboard needs "
        "client_token (insecure_allow_remote waives only TLS)");
  c.client_token = "secret";
  CHECK(c.Validate().ok());
  c.http_listen = "localhost";
  CHECK(c.Validate().message().find("http_listen") != absl::string_view::npos);
}

TEST_CASE("a token listed for two roles (client, worker, viewer) is refused, naming both roles") {
  ServerConfig c = Valid();
  c.client_token = "a,shared";
  c.worker_token = "shared";
  Status s = c.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() ==
        "client_token, worker_token: the same token is listed for both roles; give each role "
        "its own token");
  c.worker_token = "w";
  c.viewer_token = "a";
  CHECK(c.Validate().message().rfind("client_token, viewer_token:", 0) == 0);
  c.viewer_token = "w";
  CHECK(c.Validate().message().rfind("worker_token, viewer_token:", 0) == 0);
  c.viewer_token = "v";
  CHECK(c.Validate().ok());
}

TEST_CASE("a viewer token without a client token is refused: the writes would be open") {
  ServerConfig c = Valid();
  c.viewer_token = "v";
  const Status s = c.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message().find("viewer_token") != absl::string_view::npos);
  c.viewer_token = "v,";
  CHECK(c.Validate().message().find("viewer_token") != absl::string_view::npos);
}

TEST_CASE(
    "a health address may be remote without TLS or tokens but not on another listener's fixed "
    "port") {
  ServerConfig c = Valid();
  c.health_listen = "0.0.0.0:8081";
  CHECK(c.Validate().ok());  // serves only grpc.health.v1: no insecure_allow_remote needed
  c.health_listen = "0.0.0.0";
  CHECK(c.Validate().message().find("health_listen") != absl::string_view::npos);
  for (const char* taken : {"0.0.0.0:50051", "127.0.0.1:9464"}) {
    INFO(taken);
    c.health_listen = taken;
    const Status s = c.Validate();
    CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    CHECK(s.message().find("health_listen") != absl::string_view::npos);
  }
  c.health_listen = "0.0.0.0:8080";
  CHECK(c.Validate().ok());  // http_listen is off
  c.http_listen = "127.0.0.1:8080";
  CHECK(c.Validate().message().find("http_listen") != absl::string_view::npos);
  c.metrics_listen = "";
  c.health_listen = "0.0.0.0:9464";
  CHECK(c.Validate().ok());  // the exposer is off
  c.listen = "127.0.0.1:0";
  c.health_listen = "127.0.0.1:0";
  CHECK(c.Validate().ok());  // two free ports, chosen at bind time
}

}  // namespace
}  // namespace bitsweep::server

namespace bitsweep::server {
namespace {

TEST_CASE("a remote metrics_listen is refused at start without TLS unless "
          "insecure_allow_remote, and taken with TLS (served as HTTPS)") {
  ServerConfig c = Valid();
  c.metrics_listen = "0.0.0.0:9464";
  Status s = c.Validate();
  CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.message() ==
        "metrics_listen: '0.0.0.0:9464' is not a loopback address; remote /metrics needs TLS "
        "(tls_cert, tls_key: it is then served as HTTPS), or insecure_allow_remote on a trusted "
        "network");
  c.metrics_listen = "127.example.com:9464";  // parsed, not prefix-matched
  CHECK_FALSE(c.Validate().ok());
  c.metrics_listen = "0.0.0.0:9464";
  c.insecure_allow_remote = true;
  CHECK(c.Validate().ok());
  c.insecure_allow_remote = false;
  c.tls_cert = "cert.pem";
  c.tls_key = "key.pem";
  CHECK(c.Validate().ok());
  ServerConfig local = Valid();
  for (const char* address : {"127.0.0.1:0", "[::1]:9464", "localhost:9464"}) {
    local.metrics_listen = address;
    CHECK(local.Validate().ok());
  }
}

}  // namespace
}  // namespace bitsweep::server
