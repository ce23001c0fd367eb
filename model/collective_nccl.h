// The NCCL back end of Collective, for CUDA tensors: one communicator per tensor-parallel group,
// created with ncclCommInitRank from a unique id that rank 0 publishes through the same c10d
// TCPStore rendezvous the Gloo back end uses. Built only when CMake finds CUDA and NCCL
// (BITSWEEP_WITH_NCCL); running it needs a CUDA build of libtorch (Debian's is CPU only), so the
// operations reject CPU tensors with a clear error.
//
// Streams: collectives run on a blocking stream of the rank's device, which orders them after
// work on the legacy default stream, and the call waits for completion before returning, so
// callers see the same synchronous semantics as the Gloo back end.
#pragma once

#include "common/status.h"
#include "model/collective.h"
#include "model/collective_gloo.h"

namespace bitsweep::model {

// Whether this build has the NCCL back end.
bool NcclAvailable();

// Joins the group on CUDA device `device` (usually the local rank). UNAVAILABLE when NCCL is
// not built in, the device cannot be selected, or the rendezvous / communicator fails.
StatusOr<std::shared_ptr<const Collective>> ConnectNccl(const Rendezvous& rendezvous, int device);

}  // namespace bitsweep::model
