#include "rpc/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <fstream>
#include <iterator>

namespace bitsweep::rpc {
namespace {

std::string ReadPem(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

std::shared_ptr<grpc::Channel> OpenChannel(const ChannelOptions& options) {
  if (options.tls_ca.empty()) {
    return grpc::CreateChannel(options.target, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadPem(options.tls_ca);
  if (!options.tls_cert.empty()) ssl.pem_cert_chain = ReadPem(options.tls_cert);
  if (!options.tls_key.empty()) ssl.pem_private_key = ReadPem(options.tls_key);
  return grpc::CreateChannel(options.target, grpc::SslCredentials(ssl));
}

}  // namespace bitsweep::rpc
