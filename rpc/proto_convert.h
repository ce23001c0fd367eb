// The job state between common/job_state.h and the bitsweep.v1 enum, for the coordinator (which
// answers in v1) and its clients (which display common's names). Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "bitsweep/v1/types.pb.h"
#include "common/job_state.h"
#include "common/status.h"

namespace bitsweep::rpc {

v1::JobState JobStateToProto(JobState state);
// INVALID_ARGUMENT naming `field` for an unknown value; nullopt for JOB_STATE_UNSPECIFIED.
StatusOr<std::optional<JobState>> JobStateFromProto(v1::JobState state, const std::string& field);

// JobStateName of the state ("PENDING", "CANCEL_REQUESTED"); "UNSPECIFIED" for
// JOB_STATE_UNSPECIFIED and an unknown value (a newer coordinator's).
std::string_view JobStateDisplayName(v1::JobState state);

}  // namespace bitsweep::rpc
