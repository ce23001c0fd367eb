// Collective: the one boundary between the engine and inter-process communication. The model
// and the quantizers call these operations on the ranks of a tensor-parallel group; they never
// see c10d, Gloo or NCCL. Every rank must call the same operations in the same order with
// tensors of the same shape and dtype (the usual collective contract); a rank that does not
// makes the others wait until the group's timeout.
//
// Back ends: SingleProcessCollective (world of one: every operation is the identity),
// GlooCollective (model/collective_gloo.h: c10d ProcessGroupGloo over TCP, CPU tensors) and
// NcclCollective (model/collective_nccl.h, built when CUDA and NCCL are found: CUDA tensors).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include <memory>

namespace bitsweep::model {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Where the tensors it reduces must live: the CPU (Gloo, one process) or this rank's GPU
  // (NCCL). Small host values (a loss, a count) are reduced in a tensor made here.
  virtual c10::Device device() const { return c10::Device(c10::kCPU); }
  // In place: every rank ends with the element-wise sum (max) over ranks, bitwise identical on
  // every rank.
  virtual void AllReduceSum(at::Tensor& t) const = 0;
  virtual void AllReduceMax(at::Tensor& t) const = 0;
  // The concatenation along `dim` of every rank's `local`, in rank order (same shape on every
  // rank).
  virtual at::Tensor AllGather(const at::Tensor& local, int64_t dim) const = 0;
  // In place: every rank ends with rank `root`'s tensor.
  virtual void Broadcast(at::Tensor& t, int root) const = 0;
  virtual void Barrier() const = 0;
};

// The world of one rank.
std::shared_ptr<const Collective> SingleProcessCollective();

// Rows [begin, begin + size) of `total` split over `world` ranks in equal parts: the shard of
// `rank`. REQUIRES: world divides total.
struct ShardRange {
  int64_t begin = 0;
  int64_t size = 0;
};
ShardRange EvenShard(int64_t total, int rank, int world);

}  // namespace bitsweep::model
