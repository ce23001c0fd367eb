// Waiting in tests: poll for the condition the test needs, with a deadline, instead of sleeping
// a fixed time (too short on a busy machine, wasted on an idle one). Header-only.
#pragma once

#include <chrono>
#include <thread>

namespace bitsweep::testing {

// Calls `condition` (a callable returning bool) every `interval` until it returns true: true
// then, false once `timeout` has passed with the condition still false. The condition is
// evaluated at least once, and once more at the deadline.
template <typename Condition>
bool WaitUntil(Condition condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval = std::chrono::milliseconds(50)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace bitsweep::testing
