// Test certificates made with the openssl command line tool. Header-only.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace bitsweep::testing {

// A CA (ca.pem, ca.key), a server certificate for localhost / 127.0.0.1 (server.pem,
// server.key) and a client certificate (client.pem, client.key) in `dir`; openssl's output in
// dir/openssl.log. False when openssl is missing or fails.
inline bool MakeCertificates(const std::string& dir) {
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

}  // namespace bitsweep::testing
