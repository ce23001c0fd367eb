#include "rpc/proto_convert.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace bitsweep::rpc {
namespace {

// Every common/job_state.h state and its v1 value (JOB_STATE_UNSPECIFIED is none of them).
constexpr std::pair<JobState, v1::JobState> kStates[kNumJobStates] = {
    {JobState::kPending, v1::JOB_STATE_PENDING},
    {JobState::kLeased, v1::JOB_STATE_LEASED},
    {JobState::kSucceeded, v1::JOB_STATE_SUCCEEDED},
    {JobState::kFailed, v1::JOB_STATE_FAILED},
    {JobState::kCanceled, v1::JOB_STATE_CANCELED},
    {JobState::kCancelRequested, v1::JOB_STATE_CANCEL_REQUESTED},
    {JobState::kSkipped, v1::JOB_STATE_SKIPPED},
};

}  // namespace

v1::JobState JobStateToProto(JobState state) {
  for (const auto& [common, proto] : kStates) {
    if (common == state) return proto;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

StatusOr<std::optional<JobState>> JobStateFromProto(v1::JobState state, const std::string& field) {
  if (state == v1::JOB_STATE_UNSPECIFIED) return std::optional<JobState>();
  for (const auto& [common, proto] : kStates) {
    if (proto == state) return std::optional<JobState>(common);
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown job state ", static_cast<int>(state)));
}

std::string_view JobStateDisplayName(v1::JobState state) {
  StatusOr<std::optional<JobState>> known = JobStateFromProto(state, "state");
  if (!known.ok() || !known->has_value()) return "UNSPECIFIED";
  return JobStateName(**known);
}

}  // namespace bitsweep::rpc
