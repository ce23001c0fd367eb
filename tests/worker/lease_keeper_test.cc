// The lease keeper on a manual clock with a heartbeat function of the test's own: no
// coordinator, no process, no sleeping.
#include "worker/lease_keeper.h"

#include <prometheus/text_serializer.h>

#include <catch2/catch.hpp>
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

std::string Scrape(WorkerMetrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry()->Collect());
}

TEST_CASE("the lease keeper heartbeats every third of the lease TTL with the latest progress") {
  ManualClock clock;
  FakeCoordinator coordinator;
  FakeProgress progress;
  LeaseKeeper keeper(3.0, coordinator.Fn(), &clock, nullptr, nullptr);
  CHECK(keeper.heartbeat_interval() == seconds(1));

  CHECK_FALSE(keeper.Tick(progress.Fn()).terminate);
  clock.Advance(milliseconds(999));
  keeper.Tick(progress.Fn());
  CHECK(coordinator.beats.empty());
  CHECK(progress.reads == 0);  // the progress file is read only for a heartbeat

  clock.Advance(milliseconds(1));
  const LeaseKeeper::Action action = keeper.Tick(progress.Fn());
  CHECK_FALSE(action.terminate);
  CHECK_FALSE(action.kill);
  REQUIRE(coordinator.beats.size() == 1);
  CHECK(coordinator.beats[0].fraction == 0.25);
  CHECK(coordinator.beats[0].phase == "step 1");

  for (int i = 0; i < 20; ++i) {  // polled every kJobPollInterval for two more seconds
    clock.Advance(kJobPollInterval);
    keeper.Tick(progress.Fn());
  }
  CHECK(coordinator.beats.size() == 3);
  CHECK(coordinator.beats.back().phase == "step 3");
  CHECK_FALSE(keeper.lost());
  CHECK_FALSE(keeper.canceled());
}

TEST_CASE("a cancel request stops the job process, and kills it after the grace period") {
  ManualClock clock;
  FakeCoordinator coordinator;
  FakeProgress progress;
  WorkerMetrics metrics(kWorkerVersion);
  LeaseKeeper keeper(60.0, coordinator.Fn(), &clock, nullptr, &metrics);
  coordinator.answer = true;
  clock.Advance(seconds(20));
  const LeaseKeeper::Action stop = keeper.Tick(progress.Fn());
  CHECK(stop.terminate);
  CHECK(stop.reason == "canceled");
  CHECK_FALSE(stop.kill);
  CHECK(keeper.canceled());
  CHECK_FALSE(keeper.lost());

  clock.Advance(kJobKillGrace - milliseconds(1));
  CHECK_FALSE(keeper.Tick(progress.Fn()).kill);
  clock.Advance(milliseconds(1));
  CHECK(keeper.Tick(progress.Fn()).kill);
  CHECK(Scrape(metrics).find("bitsweep_worker_heartbeats_sent_total{result=\"ok\"} 1") !=
        std::string::npos);
}

TEST_CASE("a lost lease stops the job process and no heartbeat follows") {
  ManualClock clock;
  FakeCoordinator coordinator;
  FakeProgress progress;
  WorkerMetrics metrics(kWorkerVersion);
  LeaseKeeper keeper(3.0, coordinator.Fn(), &clock, nullptr, &metrics);
  coordinator.answer = absl::FailedPreconditionError("Heartbeat: lease epoch 2 is stale");
  clock.Advance(seconds(1));
  const LeaseKeeper::Action stop = keeper.Tick(progress.Fn());
  CHECK(stop.terminate);
  CHECK(stop.reason == "lease lost");
  CHECK(keeper.lost());
  CHECK_FALSE(keeper.canceled());

  clock.Advance(seconds(60));
  const LeaseKeeper::Action later = keeper.Tick(progress.Fn());
  CHECK(later.kill);
  CHECK_FALSE(later.terminate);
  CHECK(coordinator.beats.size() == 1);
  CHECK(Scrape(metrics).find("bitsweep_worker_heartbeats_sent_total{result=\"fenced\"} 1") !=
        std::string::npos);
}

TEST_CASE("a failed heartbeat keeps the job running; a shutdown stops it at the next heartbeat") {
  ManualClock clock;
  FakeCoordinator coordinator;
  FakeProgress progress;
  std::atomic<bool> stop{false};
  WorkerMetrics metrics(kWorkerVersion);
  LeaseKeeper keeper(3.0, coordinator.Fn(), &clock, &stop, &metrics);
  coordinator.answer = absl::UnavailableError("Heartbeat: connection refused");
  clock.Advance(seconds(1));
  CHECK_FALSE(keeper.Tick(progress.Fn()).terminate);
  CHECK(Scrape(metrics).find("bitsweep_worker_heartbeats_sent_total{result=\"error\"} 1") !=
        std::string::npos);

  stop = true;
  clock.Advance(milliseconds(500));
  CHECK_FALSE(keeper.Tick(progress.Fn()).terminate);  // waits for the heartbeat
  clock.Advance(milliseconds(500));
  coordinator.answer = false;
  const LeaseKeeper::Action action = keeper.Tick(progress.Fn());
  CHECK(action.terminate);
  CHECK(action.reason == "shutdown");
  CHECK_FALSE(keeper.lost());
  CHECK_FALSE(keeper.canceled());
  CHECK(coordinator.beats.size() == 2);
}

}  // namespace
}  // namespace bitsweep::worker
