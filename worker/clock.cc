#include "worker/clock.h"

#include <thread>

namespace bitsweep::worker {
namespace {

class RealClock final : public Clock {
 public:
  TimePoint Now() override { return std::chrono::steady_clock::now(); }
  void SleepFor(Duration duration) override { std::this_thread::sleep_for(duration); }
};

}  // namespace

Clock& SteadyClock() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace bitsweep::worker
