#include "tests/testing/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/process.h"
#include "tests/testing/poll.h"

namespace bitsweep::testing {

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  return SpawnLogged(argv, log);
}

void Signal(pid_t pid, int sig) {
  if (pid <= 0) return;
  kill(pid, sig);
  waitpid(pid, nullptr, 0);
}

bool WaitForText(const std::string& path, const std::string& text, int seconds) {
  return WaitUntil([&] { return Slurp(path).find(text) != std::string::npos; },
                   std::chrono::seconds(seconds), std::chrono::milliseconds(100));
}

int Count(const std::string& text, const std::string& needle) {
  if (needle.empty()) return 0;
  int n = 0;
  for (auto at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

int EstablishedTcpConnections(pid_t pid) {
  // The inodes of the process's sockets ("socket:[12345]" links under /proc/<pid>/fd).
  std::set<std::string> inodes;
  std::error_code ec;
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind("socket:[", 0) == 0) {
      inodes.insert(target.substr(8, target.size() - 9));
    }
  }
  // /proc/net/tcp{,6} rows: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...;
  // st 01 is ESTABLISHED.
  int n = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream rows(Slurp(table));
    std::string row;
    std::getline(rows, row);  // the header
    while (std::getline(rows, row)) {
      std::istringstream f(row);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (f >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
              timeout >> inode &&
          state == "01" && inodes.count(inode) > 0) {
        ++n;
      }
    }
  }
  return n;
}

}  // namespace bitsweep::testing
