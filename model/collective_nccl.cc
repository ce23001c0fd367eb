#include "model/collective_nccl.h"

#include "absl/strings/str_cat.h"

#ifdef BITSWEEP_WITH_NCCL
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>
#endif

namespace bitsweep::model {

#ifndef BITSWEEP_WITH_NCCL

bool NcclAvailable() { return false; }

StatusOr<std::shared_ptr<const Collective>> ConnectNccl(const Rendezvous&, int) {
  return absl::UnavailableError(
      "this build has no NCCL back end (configure with CUDA and NCCL found; see README)");
}

#else

namespace {

ncclDataType_t NcclType(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return ncclFloat32;
    case at::kDouble:
      return ncclFloat64;
    case at::kHalf:
      return ncclFloat16;
    case at::kBFloat16:
      return ncclBfloat16;
    case at::kInt:
      return ncclInt32;
    case at::kLong:
      return ncclInt64;
    case at::kByte:
      return ncclUint8;
    case at::kChar:
      return ncclInt8;
    default:
      TORCH_CHECK(false, "NCCL collective: unsupported dtype ", t);
  }
  return ncclFloat32;
}

void CheckNccl(ncclResult_t r, const char* what) {
  TORCH_CHECK(r == ncclSuccess, "NCCL ", what, " failed: ", ncclGetErrorString(r));
}
void CheckCuda(cudaError_t r, const char* what) {
  TORCH_CHECK(r == cudaSuccess, "CUDA ", what, " failed: ", cudaGetErrorString(r));
}

class NcclCollective final : public Collective {
 public:
  NcclCollective(c10::intrusive_ptr<c10d::Store> store, ncclComm_t comm, cudaStream_t stream,
                 int device, int rank, int world)
      : store_(std::move(store)),
        comm_(comm),
        stream_(stream),
        device_(device),
        rank_(rank),
        world_(world) {}
  ~NcclCollective() override {
    ncclCommDestroy(comm_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  c10::Device device() const override {
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device_));
  }
  void AllReduceSum(at::Tensor& t) const override { AllReduce(t, ncclSum); }
  void AllReduceMax(at::Tensor& t) const override { AllReduce(t, ncclMax); }

  at::Tensor AllGather(const at::Tensor& local, int64_t dim) const override {
    at::Tensor in = Device(local).contiguous();
    std::vector<int64_t> shape = {world_};
    for (int64_t s : in.sizes()) shape.push_back(s);
    at::Tensor out = at::empty(shape, in.options());
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    CheckNccl(ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), NcclType(in.scalar_type()),
                            comm_, stream_),
              "allgather");
    Wait();
    return at::cat(out.unbind(0), dim);
  }

  void Broadcast(at::Tensor& t, int root) const override {
    at::Tensor buf = Device(t).contiguous();
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    CheckNccl(ncclBroadcast(buf.data_ptr(), buf.data_ptr(), buf.numel(),
                            NcclType(buf.scalar_type()), root, comm_, stream_),
              "broadcast");
    Wait();
    if (!buf.is_same(t)) t.copy_(buf);
  }

  void Barrier() const override {
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    void* one = nullptr;
    CheckCuda(cudaMalloc(&one, sizeof(float)), "cudaMalloc");
    CheckNccl(ncclAllReduce(one, one, 1, ncclFloat32, ncclSum, comm_, stream_), "barrier");
    Wait();
    cudaFree(one);
  }

 private:
  static const at::Tensor& Device(const at::Tensor& t) {
    TORCH_CHECK(t.is_cuda(), "the NCCL collective needs CUDA tensors (got ", t.device(),
                "); use the Gloo back end for CPU tensors");
    return t;
  }
  void AllReduce(at::Tensor& t, ncclRedOp_t op) const {
    at::Tensor buf = Device(t).contiguous();
    CheckCuda(cudaSetDevice(device_), "cudaSetDevice");
    CheckNccl(ncclAllReduce(buf.data_ptr(), buf.data_ptr(), buf.numel(),
                            NcclType(buf.scalar_type()), op, comm_, stream_),
              "allreduce");
    Wait();
    if (!buf.is_same(t)) t.copy_(buf);
  }
  void Wait() const { CheckCuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  c10::intrusive_ptr<c10d::Store> store_;
  ncclComm_t comm_;
  cudaStream_t stream_;
  int device_, rank_, world_;
};

}  // namespace

bool NcclAvailable() { return true; }

StatusOr<std::shared_ptr<const Collective>> ConnectNccl(const Rendezvous& r, int device) {
  if (r.world_size < 1 || r.rank < 0 || r.rank >= r.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor-parallel rank ", r.rank, " is outside a world of ", r.world_size));
  }
  const std::string where = absl::StrCat("NCCL rendezvous at ", r.host, ":", r.port, " (rank ",
                                         r.rank, " of ", r.world_size, ", cuda:", device, ")");
  if (cudaSetDevice(device) != cudaSuccess) {
    return absl::UnavailableError(absl::StrCat(where, ": cannot select the device"));
  }
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(r.port);
    options.isServer = r.rank == 0;
    options.numWorkers = r.world_size;
    options.timeout = r.timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(r.host, options);
    ncclUniqueId id;
    const std::string key = "bitsweep/nccl_unique_id";
    if (r.rank == 0) {
      CheckNccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
      std::vector<uint8_t> bytes(sizeof(id));
      std::memcpy(bytes.data(), &id, sizeof(id));
      store->set(key, bytes);
    } else {
      std::vector<uint8_t> bytes = store->get(key);
      TORCH_CHECK(bytes.size() == sizeof(id), "malformed NCCL unique id in the store");
      std::memcpy(&id, bytes.data(), sizeof(id));
    }
    ncclComm_t comm;
    CheckNccl(ncclCommInitRank(&comm, r.world_size, id, r.rank), "ncclCommInitRank");
    cudaStream_t stream;
    CheckCuda(cudaStreamCreate(&stream), "cudaStreamCreate");
    return std::shared_ptr<const Collective>(
        std::make_shared<NcclCollective>(store, comm, stream, device, r.rank, r.world_size));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(where, " failed: ", e.what()));
  }
}

#endif  // BITSWEEP_WITH_NCCL

}  // namespace bitsweep::model
