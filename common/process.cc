#include "common/process.h"

#include <unistd.h>

#include <cstdio>

namespace bitsweep {

pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (FILE* f = std::fopen(log.c_str(), "a")) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

}  // namespace bitsweep
