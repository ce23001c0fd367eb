#include "rpc/proto_convert.h"

#include <catch2/catch.hpp>

namespace bitsweep::rpc {
namespace {

TEST_CASE("every job state survives the round trip through the v1 enum") {
  for (int i = 0; i < kNumJobStates; ++i) {
    const auto state = static_cast<JobState>(i);
    const v1::JobState proto = JobStateToProto(state);
    CHECK(proto != v1::JOB_STATE_UNSPECIFIED);
    auto back = JobStateFromProto(proto, "state");
    REQUIRE(back.ok());
    REQUIRE(back->has_value());
    CHECK(**back == state);
    CHECK(JobStateDisplayName(proto) == JobStateName(state));
  }
}

TEST_CASE("an unspecified state is no state, an unknown one INVALID_ARGUMENT naming the field") {
  auto unspecified = JobStateFromProto(v1::JOB_STATE_UNSPECIFIED, "state");
  REQUIRE(unspecified.ok());
  CHECK_FALSE(unspecified->has_value());
  auto unknown = JobStateFromProto(static_cast<v1::JobState>(99), "filter.state");
  CHECK(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unknown.status().message() == "filter.state: unknown job state 99");
  CHECK(JobStateDisplayName(static_cast<v1::JobState>(99)) == "UNSPECIFIED");
  CHECK(JobStateDisplayName(v1::JOB_STATE_CANCEL_REQUESTED) == "CANCEL_REQUESTED");
}

}  // namespace
}  // namespace bitsweep::rpc
