// The columns a job transition sets, one clause per destination state: PgJobStore::Transition
// (store/transitions.cc) and the one-statement Complete (store/worker_calls.cc) both use them.
#pragma once

#include <string>

#include "common/job_state.h"
#include "store/internal/sql.h"

namespace bitsweep::store::internal {

// SQL for the values a set clause may use (PgJobStore::Transition binds $1, $2, $3; the lease
// statements give worker and deadline).
struct SetValues {
  std::string now = Ts(1);
  std::string not_before = Ts(2);
  std::string reason = "$3";
  std::string worker;    // LEASED only: the new holder
  std::string deadline;  // LEASED only: its lease deadline
  // LEASED only: the Lease call's request id (text; NULL = none)
  std::string request_id = "NULL";
};

// `, col = ...`: what moving a job along `event` into `to` sets besides state and updated_at
// (over table jobs, unaliased).
std::string SetClause(JobEvent event, JobState to, const SetValues& values = {});

}  // namespace bitsweep::store::internal
