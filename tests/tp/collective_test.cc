#include "model/collective.h"

#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "model/collective_gloo.h"
#include "model/collective_nccl.h"
#include "tests/testing/tp_ranks.h"

namespace {

using bitsweep::model::Collective;
using bitsweep::testing::RunRanks;

TEST_CASE("Gloo collectives sum, max, gather and broadcast across three ranks", "[tp]") {
  struct Out {
    at::Tensor sum, max, gathered, broadcast, bf16_sum;
  };
  auto outs = RunRanks(3, [](int rank, std::shared_ptr<const Collective> c) {
    Out o;
    o.sum = at::full({2, 3}, static_cast<float>(rank + 1));
    c->AllReduceSum(o.sum);
    o.max = at::tensor({static_cast<float>(rank), static_cast<float>(-rank)});
    c->AllReduceMax(o.max);
    o.gathered = c->AllGather(at::full({2, 1}, static_cast<float>(rank)), 1);
    o.broadcast = at::full({4}, static_cast<int64_t>(rank * 10));
    c->Broadcast(o.broadcast, 2);
    o.bf16_sum = at::full({3}, 0.5 * (rank + 1), at::kBFloat16);
    c->AllReduceSum(o.bf16_sum);
    c->Barrier();
    return o;
  });
  for (int r = 0; r < 3; ++r) {
    CHECK(at::equal(outs[r].sum, at::full({2, 3}, 6.0f)));
    CHECK(at::equal(outs[r].max, at::tensor({2.0f, 0.0f})));
    CHECK(at::equal(outs[r].gathered, at::tensor({0.0f, 1.0f, 2.0f}).repeat({2, 1})));
    CHECK(at::equal(outs[r].broadcast, at::full({4}, int64_t{20})));
    CHECK(outs[r].bf16_sum.scalar_type() == at::kBFloat16);
    CHECK(at::equal(outs[r].bf16_sum, at::full({3}, 3.0, at::kBFloat16)));
  }
}

TEST_CASE("A rendezvous with a bad rank or port is rejected naming it", "[tp]") {
  bitsweep::model::Rendezvous r;
  r.rank = 2;
  r.world_size = 2;
  auto bad_rank = bitsweep::model::ConnectGloo(r);
  REQUIRE_FALSE(bad_rank.ok());
  CHECK_THAT(std::string(bad_rank.status().message()), Catch::Contains("rank 2"));
  r.rank = 0;
  r.port = 70000;
  auto bad_port = bitsweep::model::ConnectGloo(r);
  REQUIRE_FALSE(bad_port.ok());
  CHECK_THAT(std::string(bad_port.status().message()), Catch::Contains("70000"));
}

TEST_CASE("The single-process collective is the identity", "[tp]") {
  auto c = bitsweep::model::SingleProcessCollective();
  at::Tensor t = at::arange(4, at::kFloat);
  c->AllReduceSum(t);
  CHECK(c->world_size() == 1);
  CHECK(at::equal(t, at::arange(4, at::kFloat)));
  CHECK(at::equal(c->AllGather(t, 0), t));
}

TEST_CASE("The NCCL back end refuses CPU tensors or says it is not built", "[tp]") {
  if (!bitsweep::model::NcclAvailable()) {
    bitsweep::model::Rendezvous r;
    auto c = bitsweep::model::ConnectNccl(r, 0);
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(std::string(c.status().message()), Catch::Contains("no NCCL back end"));
    return;
  }
  // Built with NCCL: without a GPU the device cannot be selected; the error says so.
  bitsweep::model::Rendezvous r;
  r.port = bitsweep::testing::FreePort();
  auto c = bitsweep::model::ConnectNccl(r, 0);
  if (!c.ok()) {
    CHECK_THAT(std::string(c.status().message()), Catch::Contains("cuda:0"));
    return;
  }
  at::Tensor cpu = at::ones({2});
  CHECK_THROWS_WITH((*c)->AllReduceSum(cpu), Catch::Contains("needs CUDA tensors"));
}

}  // namespace
