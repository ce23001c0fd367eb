#include "common/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace bitsweep {
namespace {

// Binds a loopback TCP socket to `port` (0: the kernel picks); the bound port, 0 on failure.
int BindLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  // As servers bind (gRPC, httplib): a port whose last connections linger in TIME_WAIT is free.
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(a);
  int bound = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    bound = ntohs(a.sin_port);
  }
  close(fd);
  return bound;
}

constexpr std::chrono::milliseconds kStopPoll{50};

// In a child between fork and exec: every signal this process handles goes back to its default
// action, as exec would do, while ignored ones (SIGPIPE, say) stay ignored. Async-signal-safe.
void RestoreDefaultSignalHandlers() {
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) {
    struct sigaction current {};
    if (sigaction(signal, nullptr, &current) == 0 && current.sa_handler != SIG_IGN &&
        current.sa_handler != SIG_DFL) {
      sigaction(signal, &default_action, nullptr);
    }
  }
}

}  // namespace

pid_t ForkForExec(const SpawnOptions& options) {
  const pid_t parent = getpid();
  // Signals stay blocked from fork until the child has dropped this process's handlers, so a
  // signal sent to the new pid (or its group) before exec never runs the parent's handler in
  // the copy.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = fork();
  if (pid == 0) {
    RestoreDefaultSignalHandlers();
    if (options.own_process_group) setpgid(0, 0);
    if (options.parent_death_signal != 0) {
      prctl(PR_SET_PDEATHSIG, options.parent_death_signal);
      if (getppid() != parent) _exit(127);  // the parent died before prctl
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    return 0;
  }
  const int fork_errno = errno;
  // Also in the parent, so that a signal to the group cannot precede the child's setpgid.
  if (pid > 0 && options.own_process_group) setpgid(pid, pid);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  errno = fork_errno;
  return pid;
}

pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log,
                  const SpawnOptions& options) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Opened before fork: the child of a threaded process may only make async-signal-safe calls.
  const int log_fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  const pid_t pid = ForkForExec(options);
  if (pid == 0) {
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    sigset_t none;  // no inherited mask: a caller that blocks signals for sigwait is common
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (log_fd >= 0) close(log_fd);
  return pid;
}

bool StopProcessGroup(pid_t leader, std::chrono::milliseconds grace) {
  if (leader <= 0) return true;
  kill(-leader, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  bool exited = false;
  while (true) {
    const pid_t r = waitpid(leader, nullptr, WNOHANG);
    if (r == leader || (r < 0 && errno == ECHILD)) {
      exited = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(kStopPoll);
  }
  // Whatever is left of the group (the leader, or children it did not stop) dies now.
  kill(-leader, SIGKILL);
  if (!exited) waitpid(leader, nullptr, 0);
  return exited;
}

int FreePort() { return BindLoopback(0); }

bool PortIsFree(int port) { return port > 0 && port < 65536 && BindLoopback(port) == port; }

}  // namespace bitsweep
