// The Gloo back end of Collective: c10d's ProcessGroupGloo (CPU tensors), with ranks meeting
// through a c10d TCPStore that rank 0 serves (the rendezvous torchrun uses). Works with Debian's
// CPU libtorch, across processes on one machine (loopback) or across pods.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "model/collective.h"

namespace bitsweep::model {

struct Rendezvous {
  std::string host = "127.0.0.1";  // where rank 0 serves the store (and Gloo binds)
  int port = 0;                    // the store's port; rank 0 binds it, the others connect
  int rank = 0;
  int world_size = 1;
  // How long to wait for every rank to arrive, and for any one collective to finish.
  std::chrono::milliseconds timeout = std::chrono::minutes(10);
};

// Joins the group: blocks until all world_size ranks have connected. UNAVAILABLE (naming the
// address and rank) when the rendezvous fails or times out; INVALID_ARGUMENT for a bad rank,
// world size or port.
StatusOr<std::shared_ptr<const Collective>> ConnectGloo(const Rendezvous& rendezvous);

}  // namespace bitsweep::model
