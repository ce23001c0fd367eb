// Helpers for tests that run the project's binaries as separate processes (e2e, CLI).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/process.h"

namespace bitsweep::testing {

// The whole file ("" when it cannot be read).
std::string Slurp(const std::string& path);
// Writes `text` to `path`, creating parent directories.
void WriteFile(const std::string& path, const std::string& text);
// Starts argv[0] (an absolute path) with stdout and stderr appended to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log);
// Sends `sig` and reaps the process.
void Signal(pid_t pid, int sig);
// A loopback TCP port nothing listens on right now (common/process.h).
using ::bitsweep::FreePort;
// Polls `path` until it contains `text`; false after `seconds`.
bool WaitForText(const std::string& path, const std::string& text, int seconds);
// How often `needle` occurs in `text` (non-overlapping).
int Count(const std::string& text, const std::string& needle);
// The number of ESTABLISHED TCP connections (IPv4 or IPv6) whose socket process `pid` holds
// open: its own sockets, read from /proc/<pid>/fd and /proc/net/tcp{,6}.
int EstablishedTcpConnections(pid_t pid);

}  // namespace bitsweep::testing
