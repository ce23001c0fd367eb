// Clock: the worker's one source of time and of waiting. The main loop, the coordinator client's
// retries and the lease keeper read and wait through it, so their timing is tested on a
// ManualClock instead of by sleeping. Monotonic (std::chrono::steady_clock): wall-clock jumps
// do not move heartbeats or deadlines.
#pragma once

#include <chrono>
#include <mutex>

namespace bitsweep::worker {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  virtual ~Clock() = default;
  virtual TimePoint Now() = 0;
  virtual void SleepFor(Duration duration) = 0;
};

// The process's steady clock; std::this_thread::sleep_for. Thread-safe, never destroyed.
Clock& SteadyClock();

// A clock that only moves when told to: SleepFor advances it at once, and Advance moves it from
// a test. Thread-safe.
class ManualClock final : public Clock {
 public:
  TimePoint Now() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void SleepFor(Duration duration) override { Advance(duration); }
  void Advance(Duration duration) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += duration;
  }

 private:
  std::mutex mu_;
  TimePoint now_{};  // the epoch of steady_clock: tests use differences only
};

}  // namespace bitsweep::worker
