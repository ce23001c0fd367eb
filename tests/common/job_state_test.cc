#include "common/job_state.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <utility>

namespace bitsweep {
namespace {

using S = JobState;
using E = JobEvent;

// The expected lifecycle, written out independently of kJobTransitions (from the lifecycle's
// prose description).
const std::map<std::pair<S, E>, S>& Expected() {
  static const auto* m = new std::map<std::pair<S, E>, S>{
      {{S::kPending, E::kLease}, S::kLeased},
      {{S::kLeased, E::kHeartbeat}, S::kLeased},
      {{S::kCancelRequested, E::kHeartbeat}, S::kCancelRequested},
      {{S::kLeased, E::kComplete}, S::kSucceeded},
      {{S::kCancelRequested, E::kComplete}, S::kCanceled},
      {{S::kLeased, E::kRetry}, S::kPending},
      {{S::kCancelRequested, E::kRetry}, S::kCanceled},
      {{S::kLeased, E::kFail}, S::kFailed},
      {{S::kCancelRequested, E::kFail}, S::kCanceled},
      {{S::kLeased, E::kExpire}, S::kPending},
      {{S::kCancelRequested, E::kExpire}, S::kCanceled},
      {{S::kPending, E::kCancel}, S::kCanceled},
      {{S::kLeased, E::kCancel}, S::kCancelRequested},
      {{S::kCanceled, E::kResubmit}, S::kPending},
      {{S::kFailed, E::kResubmit}, S::kPending},
      {{S::kSkipped, E::kResubmit}, S::kPending},
      {{S::kPending, E::kSkip}, S::kSkipped},
  };
  return *m;
}

TEST_CASE("Apply follows the lifecycle table for every state and event pair", "[job_state]") {
  int possible = 0;
  for (int s = 0; s < kNumJobStates; ++s) {
    for (int e = 0; e < kNumJobEvents; ++e) {
      const S state = static_cast<S>(s);
      const E event = static_cast<E>(e);
      INFO(JobStateName(state) << " + " << JobEventName(event));
      StatusOr<S> got = Apply(state, event);
      auto it = Expected().find({state, event});
      if (it == Expected().end()) {
        REQUIRE(got.status().code() == absl::StatusCode::kFailedPrecondition);
        CHECK(got.status().message().find(std::string(JobStateName(state))) != std::string::npos);
        CHECK(got.status().message().find(std::string(JobEventName(event))) != std::string::npos);
      } else {
        REQUIRE(got.ok());
        CHECK(*got == it->second);
        ++possible;
      }
    }
  }
  CHECK(possible == static_cast<int>(Expected().size()));
}

TEST_CASE(
    "terminal states accept only a resubmit of a canceled, failed or skipped job, a succeeded job "
    "accepts nothing and submit no state",
    "[job_state]") {
  for (S terminal : {S::kSucceeded, S::kFailed, S::kCanceled, S::kSkipped}) {
    CHECK(IsTerminal(terminal));
    for (int e = 0; e < kNumJobEvents; ++e) {
      const bool resubmit = terminal != S::kSucceeded && static_cast<E>(e) == E::kResubmit;
      CHECK(Apply(terminal, static_cast<E>(e)).ok() == resubmit);
    }
  }
  CHECK(SourceStates(E::kSubmit).empty());
  CHECK(kInitialJobState == S::kPending);
  CHECK_FALSE(IsTerminal(S::kCancelRequested));
}

TEST_CASE("no two table rows share an event and a source state", "[job_state]") {
  std::set<std::pair<E, S>> seen;
  for (const JobTransition& t : kJobTransitions) {
    REQUIRE(t.num_sources >= 1);
    REQUIRE(t.num_sources <= t.sources.size());
    for (std::size_t i = 0; i < t.num_sources; ++i) {
      CHECK(seen.insert({t.event, t.sources[i]}).second);
    }
  }
}

TEST_CASE("source states of an event feed the SQL guard as a text array", "[job_state]") {
  CHECK(SourceStatesArray(E::kLease) == "{PENDING}");
  CHECK(SourceStatesArray(E::kHeartbeat) == "{LEASED,CANCEL_REQUESTED}");
  CHECK(SourceStatesArray(E::kCancel) == "{PENDING,LEASED}");
  CHECK(SourceStatesArray(E::kSubmit) == "{}");
  CHECK(SourceStatesArray(E::kResubmit) == "{FAILED,CANCELED,SKIPPED}");
  CHECK(SourceStatesArray(E::kSkip) == "{PENDING}");
}

TEST_CASE("state and event names round trip and unknown names are rejected", "[job_state]") {
  for (int s = 0; s < kNumJobStates; ++s) {
    auto parsed = ParseJobState(JobStateName(static_cast<S>(s)));
    REQUIRE(parsed.ok());
    CHECK(*parsed == static_cast<S>(s));
  }
  for (int e = 0; e < kNumJobEvents; ++e) {
    auto parsed = ParseJobEvent(JobEventName(static_cast<E>(e)));
    REQUIRE(parsed.ok());
    CHECK(*parsed == static_cast<E>(e));
  }
  CHECK(ParseJobState("RUNNING").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseJobEvent("").status().code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace bitsweep
