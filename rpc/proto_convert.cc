#include "rpc/proto_convert.h"

#include "absl/strings/str_cat.h"

namespace bitsweep::rpc {

v1::JobState JobStateToProto(JobState state) {
  switch (state) {
    case JobState::kPending:
      return v1::JOB_STATE_PENDING;
    case JobState::kLeased:
      return v1::JOB_STATE_LEASED;
    case JobState::kSucceeded:
      return v1::JOB_STATE_SUCCEEDED;
    case JobState::kFailed:
      return v1::JOB_STATE_FAILED;
    case JobState::kCanceled:
      return v1::JOB_STATE_CANCELED;
    case JobState::kCancelRequested:
      return v1::JOB_STATE_CANCEL_REQUESTED;
  }
  return v1::JOB_STATE_UNSPECIFIED;
}

StatusOr<std::optional<JobState>> JobStateFromProto(v1::JobState state, const std::string& field) {
  switch (state) {
    case v1::JOB_STATE_UNSPECIFIED:
      return std::optional<JobState>();
    case v1::JOB_STATE_PENDING:
      return std::optional<JobState>(JobState::kPending);
    case v1::JOB_STATE_LEASED:
      return std::optional<JobState>(JobState::kLeased);
    case v1::JOB_STATE_SUCCEEDED:
      return std::optional<JobState>(JobState::kSucceeded);
    case v1::JOB_STATE_FAILED:
      return std::optional<JobState>(JobState::kFailed);
    case v1::JOB_STATE_CANCELED:
      return std::optional<JobState>(JobState::kCanceled);
    case v1::JOB_STATE_CANCEL_REQUESTED:
      return std::optional<JobState>(JobState::kCancelRequested);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": unknown job state ", static_cast<int>(state)));
  }
}

std::string_view JobStateDisplayName(v1::JobState state) {
  StatusOr<std::optional<JobState>> known = JobStateFromProto(state, "state");
  if (!known.ok() || !known->has_value()) return "UNSPECIFIED";
  return JobStateName(**known);
}

}  // namespace bitsweep::rpc
