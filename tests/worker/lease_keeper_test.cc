// The lease keeper on a manual clock with a heartbeat function of the test's own: no
// coordinator, no process, no sleeping.
#include "worker/lease_keeper.h"

#include <prometheus/text_serializer.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "worker/metrics.h"

namespace bitsweep::worker {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A heartbeat that answers `answer` and remembers the progress it was sent.
struct FakeCoordinator {
  StatusOr<bool> answer = false;
  std::vector<ChildProgress> beats;
  LeaseKeeper::HeartbeatFn Fn() {
    return [this](const ChildProgress& p) {
      beats.push_back(p);
      return answer;
    };
  }
};

// A process whose progress moves on with every read.
struct FakeProgress {
  int reads = 0;
  LeaseKeeper::ProgressFn Fn() {
    return [this] {
      ++reads;
      return ChildProgress{0.25 * reads, "step " + std::to_string(reads)};
    };
  }
};

// A keeper of a lease with `ttl_seconds` on a manual clock, its fakes, its metrics.
struct Keeper {
  explicit Keeper(double ttl_seconds)
      : keeper(ttl_seconds, coordinator.Fn(), &clock, &stop, &metrics) {}
  LeaseKeeper::Action Tick() { return keeper.Tick(progress.Fn()); }
  // Whether bitsweep_worker_heartbeats_sent_total{result} is `n`.
  bool Counted(const std::string& result, int n) {
    const std::string text = prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
    return text.find("bitsweep_worker_heartbeats_sent_total{result=\"" + result + "\"} " +
                     std::to_string(n) + "\n") != std::string::npos;
  }

  ManualClock clock;
  FakeCoordinator coordinator;
  FakeProgress progress;
  std::atomic<bool> stop{false};
  WorkerMetrics metrics{kWorkerVersion};
  LeaseKeeper keeper;
};

TEST_CASE("the lease keeper heartbeats every third of the lease TTL with the latest progress") {
  Keeper k(3.0);
  CHECK(k.keeper.heartbeat_interval() == seconds(1));
  CHECK_FALSE(k.Tick().terminate);
  k.clock.Advance(milliseconds(999));
  k.Tick();
  CHECK(k.coordinator.beats.empty());
  CHECK(k.progress.reads == 0);  // the progress file is read only for a heartbeat

  k.clock.Advance(milliseconds(1));
  const LeaseKeeper::Action action = k.Tick();
  CHECK_FALSE(action.terminate);
  CHECK_FALSE(action.kill);
  REQUIRE(k.coordinator.beats.size() == 1);
  CHECK(k.coordinator.beats[0].fraction == 0.25);
  CHECK(k.coordinator.beats[0].phase == "step 1");

  for (int i = 0; i < 20; ++i) {  // polled every kJobPollInterval for two more seconds
    k.clock.Advance(kJobPollInterval);
    k.Tick();
  }
  CHECK(k.coordinator.beats.size() == 3);
  CHECK(k.coordinator.beats.back().phase == "step 3");
  CHECK_FALSE(k.keeper.lost());
  CHECK_FALSE(k.keeper.canceled());
  CHECK(k.Counted("ok", 3));
}

TEST_CASE("a long lease is still heartbeaten every 2 s, so progress moves and a cancel lands soon") {
  Keeper k(600.0);  // a third of the TTL would be 200 s
  CHECK(k.keeper.heartbeat_interval() == kMaxHeartbeatInterval);
  k.clock.Advance(kMaxHeartbeatInterval - milliseconds(1));
  k.Tick();
  CHECK(k.coordinator.beats.empty());
  k.clock.Advance(milliseconds(1));
  k.Tick();
  CHECK(k.coordinator.beats.size() == 1);
  k.coordinator.answer = true;  // a client canceled the job
  k.clock.Advance(kMaxHeartbeatInterval);
  const LeaseKeeper::Action stop = k.Tick();
  CHECK(stop.terminate);
  CHECK(stop.reason == "canceled");
}

TEST_CASE("a cancel request stops the job process, and kills it after the grace period") {
  Keeper k(60.0);
  k.coordinator.answer = true;
  k.clock.Advance(seconds(20));
  const LeaseKeeper::Action stop = k.Tick();
  CHECK(stop.terminate);
  CHECK(stop.reason == "canceled");
  CHECK_FALSE(stop.kill);
  CHECK(k.keeper.canceled());
  CHECK_FALSE(k.keeper.lost());

  k.clock.Advance(kJobKillGrace - milliseconds(1));
  CHECK_FALSE(k.Tick().kill);
  k.clock.Advance(milliseconds(1));
  CHECK(k.Tick().kill);
}

TEST_CASE("a lost lease stops the job process and no heartbeat follows") {
  Keeper k(3.0);
  k.coordinator.answer = absl::FailedPreconditionError("Heartbeat: lease epoch 2 is stale");
  k.clock.Advance(seconds(1));
  const LeaseKeeper::Action stop = k.Tick();
  CHECK(stop.terminate);
  CHECK(stop.reason == "lease lost");
  CHECK(k.keeper.lost());
  CHECK_FALSE(k.keeper.canceled());

  k.clock.Advance(seconds(60));
  const LeaseKeeper::Action later = k.Tick();
  CHECK(later.kill);
  CHECK_FALSE(later.terminate);
  CHECK(k.coordinator.beats.size() == 1);
  CHECK(k.Counted("fenced", 1));
}

TEST_CASE("a failed heartbeat keeps the job running, a shutdown stops it at the next heartbeat") {
  Keeper k(3.0);
  k.coordinator.answer = absl::UnavailableError("Heartbeat: connection refused");
  k.clock.Advance(seconds(1));
  CHECK_FALSE(k.Tick().terminate);
  CHECK(k.Counted("error", 1));

  k.stop = true;
  k.coordinator.answer = false;
  k.clock.Advance(milliseconds(100));
  CHECK_FALSE(k.Tick().terminate);  // waits for the heartbeat (retried 250 ms after the failure)
  k.clock.Advance(milliseconds(150));
  const LeaseKeeper::Action action = k.Tick();
  CHECK(action.terminate);
  CHECK(action.reason == "shutdown");
  CHECK_FALSE(k.keeper.lost());
  CHECK_FALSE(k.keeper.canceled());
  CHECK(k.coordinator.beats.size() == 2);
}

TEST_CASE("a failed heartbeat is retried sooner than the next period, then the period resumes") {
  Keeper k(3.0);  // a heartbeat every second
  CHECK(k.keeper.heartbeat_retry_delay() == milliseconds(250));
  k.coordinator.answer = absl::UnavailableError("Heartbeat: the coordinator is restarting");
  k.clock.Advance(seconds(1));
  k.Tick();
  REQUIRE(k.coordinator.beats.size() == 1);
  // Retried a quarter of the interval later, again and again while it fails.
  for (int i = 0; i < 2; ++i) {
    k.clock.Advance(milliseconds(249));
    k.Tick();
    CHECK(k.coordinator.beats.size() == static_cast<std::size_t>(1 + i));
    k.clock.Advance(milliseconds(1));
    k.Tick();
    CHECK(k.coordinator.beats.size() == static_cast<std::size_t>(2 + i));
  }
  CHECK(k.Counted("error", 3));
  // Once one lands, the next is a whole interval later.
  k.coordinator.answer = false;
  k.clock.Advance(milliseconds(250));
  k.Tick();
  REQUIRE(k.coordinator.beats.size() == 4);
  k.clock.Advance(milliseconds(999));
  k.Tick();
  CHECK(k.coordinator.beats.size() == 4);
  k.clock.Advance(milliseconds(1));
  k.Tick();
  CHECK(k.coordinator.beats.size() == 5);
  CHECK_FALSE(k.keeper.lost());
}

}  // namespace
}  // namespace bitsweep::worker
