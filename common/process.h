// Starting a helper process: the `bitsweep local` launcher and the tests start the coordinator,
// workers and the CLI this way. Torch-free.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace bitsweep {

// Starts argv[0] (an executable path) with argv, standard output and error appended to `log`;
// returns its pid (the child exits 127 when argv[0] cannot be executed).
pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log);

}  // namespace bitsweep
