// Client channels to the coordinator, as the CLI and the worker open them: plaintext, or TLS
// verified against a CA file, optionally with a client certificate (mutual TLS). The address and
// the file names come from flags, read only in main().
#pragma once

#include <grpcpp/channel.h>

#include <memory>
#include <string>

namespace bitsweep::rpc {

struct ChannelOptions {
  std::string target = "127.0.0.1:50051";  // host:port of the coordinator
  std::string tls_ca;                      // PEM file of the CA: TLS when set, plaintext when empty
  std::string tls_cert;  // PEM file of a client certificate (mutual TLS; only with tls_ca)
  std::string tls_key;   // PEM file of its key
};

// The channel connects lazily, so this never fails: an unreadable PEM file reads as empty and the
// calls then fail the handshake (UNAVAILABLE), as an unreachable coordinator does.
std::shared_ptr<grpc::Channel> OpenChannel(const ChannelOptions& options);

}  // namespace bitsweep::rpc
