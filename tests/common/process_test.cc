#include "common/process.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "tests/testing/paths.h"
#include "tests/testing/poll.h"
#include "tests/testing/process.h"

namespace bitsweep {
namespace {

// Whether `pid` is a live process (not a zombie).
bool Running(pid_t pid) {
  const std::string stat = testing::Slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

bool GoneWithin(pid_t pid, int seconds) {
  return testing::WaitUntil([pid] { return !Running(pid); }, std::chrono::seconds(seconds));
}

TEST_CASE("StopProcessGroup stops a child and the processes it started") {
  const std::string dir = testing::ScratchDir("process_group");
  SpawnOptions options;
  options.own_process_group = true;
  const pid_t shell = SpawnLogged(
      {"/bin/sh", "-c", "sleep 300 & echo $! > " + dir + "/grandchild; wait"}, dir + "/log",
      options);
  REQUIRE(testing::WaitUntil([&] { return !testing::Slurp(dir + "/grandchild").empty(); },
                             std::chrono::seconds(10)));
  const pid_t grandchild = std::stoi(testing::Slurp(dir + "/grandchild"));
  CHECK(getpgid(shell) == shell);
  CHECK(getpgid(grandchild) == shell);
  CHECK(StopProcessGroup(shell, std::chrono::seconds(5)));
  CHECK(GoneWithin(grandchild, 10));
}

TEST_CASE("A child started with parent_death_signal dies with the parent that started it") {
  const std::string dir = testing::ScratchDir("process_pdeathsig");
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t parent = fork();
  if (parent == 0) {
    SpawnOptions options;
    options.parent_death_signal = SIGKILL;
    const pid_t child = SpawnLogged({"/bin/sleep", "300"}, dir + "/log", options);
    if (write(fds[1], &child, sizeof(child)) != sizeof(child)) _exit(1);
    _exit(0);  // dies without stopping its child
  }
  close(fds[1]);
  pid_t child = 0;
  REQUIRE(read(fds[0], &child, sizeof(child)) == sizeof(child));
  close(fds[0]);
  waitpid(parent, nullptr, 0);
  REQUIRE(child > 0);
  CHECK(GoneWithin(child, 10));
}

TEST_CASE("PortIsFree is false while something listens on the port and true after") {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(fd, 1) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const int port = ntohs(a.sin_port);
  CHECK_FALSE(PortIsFree(port));
  close(fd);
  CHECK(PortIsFree(port));
  CHECK_FALSE(PortIsFree(0));
}

}  // namespace
}  // namespace bitsweep
