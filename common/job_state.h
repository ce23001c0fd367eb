// The job lifecycle: states, events and the one transition table that every state change (in
// the store and in the coordinator) goes through, so no code path invents its own transition.
//
// Every state change of a job, in the store's SQL and in the coordinator's code, is an entry of
// kJobTransitions applied through Apply(). The store builds its SQL guards from SourceStates()
// (`... WHERE state = ANY($sources)`), so the database cannot disagree with this table.
// Everything here is pure and thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace bitsweep {

enum class JobState {
  kPending,          // waiting for a worker; not_before may hold it back after a retryable failure
  kLeased,           // held by one worker under (lease_epoch, lease_deadline)
  kSucceeded,        // terminal: result rows written in the same transaction
  kFailed,           // terminal: fatal failure, or retryable failures exhausted max_attempts
  kCanceled,         // terminal
  kCancelRequested,  // still leased; the worker learns of the cancel on its next heartbeat
  kSkipped,          // terminal: never run, an early-abort rule judged it useless (reason kept)
};
inline constexpr int kNumJobStates = 7;

enum class JobEvent {
  kSubmit,     // (new) -> PENDING; never applied to an existing state
  kLease,      // a worker takes the job: lease_epoch += 1, attempt += 1
  kHeartbeat,  // the holder renews its lease; the state is kept
  kComplete,   // the holder finished; results are written when it lands in SUCCEEDED
  kRetry,      // retryable failure (or expired lease) with attempts left: back to PENDING
  kFail,       // fatal failure, or attempts exhausted
  kExpire,     // the lease deadline passed without a heartbeat (attempts left)
  kCancel,     // a client cancels the job or its sweep
  kResubmit,   // a NEW sweep asks for a CANCELED, FAILED or SKIPPED job: it runs again
  kSkip,       // early abort (common/early_abort.h): a pending job of a diverged artifact
};
inline constexpr int kNumJobEvents = 10;

// Upper-case names as stored in PostgreSQL ("PENDING", "CANCEL_REQUESTED", "LEASE", ...).
std::string_view JobStateName(JobState state);
std::string_view JobEventName(JobEvent event);
// Inverse of the names above; INVALID_ARGUMENT naming the unknown text.
StatusOr<JobState> ParseJobState(std::string_view name);
StatusOr<JobEvent> ParseJobEvent(std::string_view name);

bool IsTerminal(JobState state);

// One row of the table: `event` moves a job in any of `sources` to `destination`.
struct JobTransition {
  JobEvent event;
  std::array<JobState, 3> sources;
  std::size_t num_sources;
  JobState destination;
};

// The lifecycle as a table. An event may have several rows (one per destination); no two
// rows share an (event, source) pair (the test checks). "PENDING or FAILED" in the prose table
// is split into kRetry / kExpire (-> PENDING) and kFail (-> FAILED): the store picks the event
// from retryable and attempt < max_attempts, and an expired lease with no attempts left is a
// kFail whose reason says "lease expired".
// Terminal states are final for the sweep that saw them, but a job is shared by every sweep that
// asks for its key: a NEW sweep (another request id) asking for a FAILED, CANCELED or SKIPPED job
// resubmits it (kResubmit: attempts start again, the epoch keeps growing); a SUCCEEDED job is
// answered from its stored result and never runs again. A replayed SubmitSweep (same request id)
// applies nothing.
inline constexpr std::array<JobTransition, 15> kJobTransitions = {{
    {JobEvent::kLease, {JobState::kPending}, 1, JobState::kLeased},
    {JobEvent::kHeartbeat, {JobState::kLeased}, 1, JobState::kLeased},
    {JobEvent::kHeartbeat, {JobState::kCancelRequested}, 1, JobState::kCancelRequested},
    {JobEvent::kComplete, {JobState::kLeased}, 1, JobState::kSucceeded},
    {JobEvent::kComplete, {JobState::kCancelRequested}, 1, JobState::kCanceled},
    {JobEvent::kRetry, {JobState::kLeased}, 1, JobState::kPending},
    {JobEvent::kRetry, {JobState::kCancelRequested}, 1, JobState::kCanceled},
    {JobEvent::kFail, {JobState::kLeased}, 1, JobState::kFailed},
    {JobEvent::kFail, {JobState::kCancelRequested}, 1, JobState::kCanceled},
    {JobEvent::kExpire, {JobState::kLeased}, 1, JobState::kPending},
    {JobEvent::kExpire, {JobState::kCancelRequested}, 1, JobState::kCanceled},
    {JobEvent::kCancel, {JobState::kPending}, 1, JobState::kCanceled},
    {JobEvent::kCancel, {JobState::kLeased}, 1, JobState::kCancelRequested},
    {JobEvent::kResubmit,
     {JobState::kCanceled, JobState::kFailed, JobState::kSkipped},
     3,
     JobState::kPending},
    {JobEvent::kSkip, {JobState::kPending}, 1, JobState::kSkipped},
}};

// The state a new job starts in (the kSubmit destination).
inline constexpr JobState kInitialJobState = JobState::kPending;

// The destination of `event` from `state`, or FAILED_PRECONDITION naming both when the table
// has no such row. kSubmit is never possible from an existing state.
StatusOr<JobState> Apply(JobState state, JobEvent event);

// Every state from which `event` is possible, in enum order (for SQL guards).
std::vector<JobState> SourceStates(JobEvent event);

// `{PENDING,LEASED}`: SourceStates(event) as a PostgreSQL text[] literal, passed as a parameter.
std::string SourceStatesArray(JobEvent event);

}  // namespace bitsweep
