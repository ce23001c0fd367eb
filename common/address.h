// Listen addresses ("host:port", "[v6]:port"): splitting them, and whether one is loopback. Shared
// by the coordinator's and the worker's listeners, which follow one rule: a non-loopback listener
// needs TLS unless --insecure-allow-remote (server/server_config.h, worker/service.h).
#pragma once

#include <string>

namespace bitsweep {

// Splits "host:port" / "[v6]:port" (brackets removed); false when there is no port.
bool SplitHostPort(const std::string& host_port, std::string* host, std::string* port);

// Whether the host part of "host:port" ("[::1]:50051", "localhost:1") is a loopback address:
// parsed as an IPv4 or IPv6 address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104) or the name
// "localhost"; any other name (e.g. "127.example.com") is not.
bool IsLoopbackAddress(const std::string& host_port);

}  // namespace bitsweep
