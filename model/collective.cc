#include "model/collective.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

namespace bitsweep::model {
namespace {

class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  void AllReduceSum(at::Tensor&) const override {}
  void AllReduceMax(at::Tensor&) const override {}
  at::Tensor AllGather(const at::Tensor& local, int64_t) const override { return local; }
  void Broadcast(at::Tensor&, int) const override {}
  void Barrier() const override {}
};

}  // namespace

std::shared_ptr<const Collective> SingleProcessCollective() {
  static const auto single = std::make_shared<const SingleProcess>();
  return single;
}

ShardRange EvenShard(int64_t total, int rank, int world) {
  TORCH_CHECK(world >= 1 && rank >= 0 && rank < world, "EvenShard: rank ", rank, " of ", world);
  TORCH_CHECK(total % world == 0, "EvenShard: ", world, " ranks do not divide ", total);
  const int64_t size = total / world;
  return {rank * size, size};
}

}  // namespace bitsweep::model
