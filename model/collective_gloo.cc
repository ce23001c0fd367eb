#include "model/collective_gloo.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "absl/strings/str_cat.h"

namespace bitsweep::model {
namespace {

// Gloo reduces fp32 and fp64 natively; other floating dtypes travel as fp32 (bf16 -> fp32 is
// exact, and the sum is then rounded once, as a bf16 TP=1 matmul accumulating in fp32 would).
bool Widened(const at::Tensor& t) {
  return t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble && t.is_floating_point();
}

// A buffer Gloo may write: a fresh normal tensor (Gloo's worker threads run outside the
// caller's InferenceMode, where writing an inference tensor throws).
at::Tensor Buffer(const at::Tensor& t) {
  c10::InferenceMode off(false);
  return Widened(t) ? t.to(at::kFloat) : t.clone(at::MemoryFormat::Contiguous);
}

at::Tensor EmptyBuffer(at::IntArrayRef shape, const at::TensorOptions& options) {
  c10::InferenceMode off(false);
  return at::empty(shape, options);
}

class GlooCollective final : public Collective {
 public:
  GlooCollective(c10::intrusive_ptr<c10d::Store> store,
                 c10::intrusive_ptr<c10d::ProcessGroupGloo> group, int rank, int world)
      : store_(std::move(store)), group_(std::move(group)), rank_(rank), world_(world) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void AllReduceSum(at::Tensor& t) const override { AllReduce(t, c10d::ReduceOp::SUM); }
  void AllReduceMax(at::Tensor& t) const override { AllReduce(t, c10d::ReduceOp::MAX); }

  at::Tensor AllGather(const at::Tensor& local, int64_t dim) const override {
    // Gloo only reads the input (from its own thread, which may read an inference tensor), so
    // a contiguous fp32 input is used as is; the outputs are views of one fresh buffer.
    const at::Tensor in = Widened(local) ? Buffer(local) : local.contiguous();
    std::vector<int64_t> shape = {world_};
    for (int64_t s : in.sizes()) shape.push_back(s);
    at::Tensor flat = EmptyBuffer(shape, in.options());
    std::vector<at::Tensor> inputs = {in};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_; ++r) outputs[0].push_back(flat[r]);
    group_->allgather(outputs, inputs)->wait();
    const int64_t d = dim < 0 ? dim + in.dim() : dim;
    // [W, ..., n_d, ...] -> [..., W * n_d, ...]: a view for dim 0, one copy otherwise.
    at::Tensor out = flat.movedim(0, d);
    std::vector<int64_t> merged = in.sizes().vec();
    merged[d] *= world_;
    out = out.reshape(merged);
    return out.scalar_type() == local.scalar_type() ? out : out.to(local.scalar_type());
  }

  void Broadcast(at::Tensor& t, int root) const override {
    at::Tensor buf = Buffer(t);
    std::vector<at::Tensor> tensors = {buf};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    group_->broadcast(tensors, options)->wait();
    t.copy_(buf);
  }

  void Barrier() const override { group_->barrier()->wait(); }

 private:
  void AllReduce(at::Tensor& t, c10d::ReduceOp op) const {
    at::Tensor buf = Buffer(t);
    std::vector<at::Tensor> tensors = {buf};
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    group_->allreduce(tensors, options)->wait();
    t.copy_(buf);
  }

  c10::intrusive_ptr<c10d::Store> store_;  // kept alive: rank 0 serves it to the others
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group_;
  int rank_, world_;
};

}  // namespace

StatusOr<std::shared_ptr<const Collective>> ConnectGloo(const Rendezvous& r) {
  if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel rank ", r.rank, " is outside a world of ", r.world_size));
  }
  if (r.world_size == 1) return SingleProcessCollective();
  if (r.port <= 0 || r.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("rendezvous port ", r.port, " is invalid"));
  }
  const std::string where = absl::StrCat("rendezvous at ", r.host, ":", r.port, " (rank ", r.rank,
                                         " of ", r.world_size, ")");
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(r.port);
    options.isServer = r.rank == 0;
    options.numWorkers = r.world_size;
    options.waitWorkers = true;
    options.timeout = r.timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(r.host, options);
    auto group_options = c10d::ProcessGroupGloo::Options::create(r.timeout);
    group_options->devices = {c10d::ProcessGroupGloo::createDeviceForHostname(r.host)};
    group_options->threads = 2;
    auto group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, r.rank, r.world_size, group_options);
    return std::shared_ptr<const Collective>(
        std::make_shared<GlooCollective>(store, group, r.rank, r.world_size));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(where, " failed: ", e.what()));
  }
}

}  // namespace bitsweep::model
