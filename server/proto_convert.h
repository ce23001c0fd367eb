// Conversions from store value types to bitsweep.v1 messages (the job state enum itself:
// rpc/proto_convert.h). Pure functions.
#pragma once

#include <string>

#include "bitsweep/v1/coordinator.pb.h"
#include "common/job_state.h"
#include "server/job_board.h"
#include "store/job_store.h"

namespace bitsweep::server {

// Counts by state; LEASED includes CANCEL_REQUESTED (still held by a worker). finished when no
// job is pending or held.
void SweepToProto(const store::SweepInfo& sweep, v1::Sweep* out);
// `worker_name` "" when unknown; `progress` from the JobBoard when the job is running; `now`
// dates the running attempt's elapsed time and estimate.
void JobToProto(const store::JobInfo& job, const std::string& worker_name,
                const std::optional<JobProgress>& progress, absl::Time now, v1::Job* out);

}  // namespace bitsweep::server
