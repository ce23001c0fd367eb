// Starting a helper process and finding it a port: the `bitsweep local` launcher, the
// tensor-parallel rank launcher and the tests start the coordinator, workers, ranks and the CLI
// this way. Torch-free.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace bitsweep {

// Starts argv[0] (an executable path) with argv, standard output and error appended to `log`;
// returns its pid (the child exits 127 when argv[0] cannot be executed).
pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log);

// A loopback TCP port nothing listened on when asked: the kernel's pick for a socket bound to
// 127.0.0.1:0, released before returning, so another process may take it before the caller
// binds it. 0 when no socket could be bound.
int FreePort();

}  // namespace bitsweep
