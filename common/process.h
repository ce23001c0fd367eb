// Starting a helper process and finding it a port: the `bitsweep local` launcher, the
// tensor-parallel rank launcher and the tests start the coordinator, workers, ranks and the CLI
// this way. Torch-free.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace bitsweep {

struct SpawnOptions {
  // The child leads a process group of its own (setpgid): a terminal's Ctrl-C then reaches only
  // the parent, which stops the child and whatever the child started with StopProcessGroup.
  bool own_process_group = false;
  // Sent to the child when the thread that started it dies, however it dies (PR_SET_PDEATHSIG;
  // 0: none). A child whose parent is already gone when it would exec exits at once.
  int parent_death_signal = 0;
};

// fork() for a child that is to exec: 0 in the child, which has every signal this process
// handles back at its default action (ignored ones stay ignored), `options` applied and this
// thread's signal mask; the child's pid in the parent (-1 with errno when fork failed). Signals
// stay blocked from fork until the child has dropped the parent's handlers, so a signal sent to
// the new pid (or its group) before exec never runs them in the copy. The child may only make
// async-signal-safe calls (exec, dup2, _exit).
pid_t ForkForExec(const SpawnOptions& options);

// Starts argv[0] (an executable path) with argv, standard output and error appended to `log`;
// returns its pid (the child exits 127 when argv[0] cannot be executed), forked as ForkForExec
// forks but with no signal blocked.
pid_t SpawnLogged(const std::vector<std::string>& argv, const std::string& log,
                  const SpawnOptions& options = {});

// Stops a child started with own_process_group: SIGTERM to its whole group, then, when the
// leader has not exited within `grace`, SIGKILL to the group; reaps the leader. Returns true
// when the leader exited within the grace period. Members that outlive their leader are killed.
bool StopProcessGroup(pid_t leader, std::chrono::milliseconds grace);

// A loopback TCP port nothing listened on when asked: the kernel's pick for a socket bound to
// 127.0.0.1:0, released before returning, so another process may take it before the caller
// binds it. 0 when no socket could be bound.
int FreePort();

// Whether a listening socket could bind 127.0.0.1:`port` right now (SO_REUSEADDR, as servers
// bind: connections lingering in TIME_WAIT do not count); released before returning.
bool PortIsFree(int port);

}  // namespace bitsweep
