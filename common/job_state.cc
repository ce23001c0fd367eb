#include "common/job_state.h"

namespace bitsweep {

namespace {

constexpr std::array<std::string_view, kNumJobStates> kStateNames = {
    "PENDING", "LEASED", "SUCCEEDED", "FAILED", "CANCELED", "CANCEL_REQUESTED", "SKIPPED"};
constexpr std::array<std::string_view, kNumJobEvents> kEventNames = {
    "SUBMIT", "LEASE", "HEARTBEAT", "COMPLETE", "RETRY", "FAIL", "EXPIRE", "CANCEL", "RESUBMIT", "SKIP"};

}  // namespace

std::string_view JobStateName(JobState state) {
  return kStateNames[static_cast<std::size_t>(state)];
}

std::string_view JobEventName(JobEvent event) {
  return kEventNames[static_cast<std::size_t>(event)];
}

StatusOr<JobState> ParseJobState(std::string_view name) {
  for (int i = 0; i < kNumJobStates; ++i) {
    if (kStateNames[i] == name) return static_cast<JobState>(i);
  }
  return absl::InvalidArgumentError("unknown job state '" + std::string(name) + "'");
}

StatusOr<JobEvent> ParseJobEvent(std::string_view name) {
  for (int i = 0; i < kNumJobEvents; ++i) {
    if (kEventNames[i] == name) return static_cast<JobEvent>(i);
  }
  return absl::InvalidArgumentError("unknown job event '" + std::string(name) + "'");
}

bool IsTerminal(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCanceled || state == JobState::kSkipped;
}

StatusOr<JobState> Apply(JobState state, JobEvent event) {
  for (const JobTransition& t : kJobTransitions) {
    if (t.event != event) continue;
    for (std::size_t i = 0; i < t.num_sources; ++i) {
      if (t.sources[i] == state) return t.destination;
    }
  }
  return absl::FailedPreconditionError(
      "invalid job transition: " + std::string(JobEventName(event)) + " from " +
      std::string(JobStateName(state)));
}

std::vector<JobState> SourceStates(JobEvent event) {
  std::vector<JobState> out;
  for (int s = 0; s < kNumJobStates; ++s) {
    if (Apply(static_cast<JobState>(s), event).ok()) out.push_back(static_cast<JobState>(s));
  }
  return out;
}

std::string SourceStatesArray(JobEvent event) {
  std::string out = "{";
  for (JobState s : SourceStates(event)) {
    if (out.size() > 1) out += ",";
    out += JobStateName(s);
  }
  return out + "}";
}

}  // namespace bitsweep
