// Runs a tensor-parallel computation on `world` threads of this process, each a rank of a real
// Gloo group over loopback (model/collective_gloo.h). The function runs on its rank's thread
// and must not use Catch2 assertions (they are not thread-safe): it returns a value and the
// test checks the values afterwards. Throws std::runtime_error naming the rank that failed.
#pragma once

#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "model/collective_gloo.h"
#include "tests/testing/process.h"

namespace bitsweep::testing {

template <typename Fn>
auto RunRanks(int world, Fn fn)
    -> std::vector<decltype(fn(0, std::shared_ptr<const model::Collective>()))> {
  using R = decltype(fn(0, std::shared_ptr<const model::Collective>()));
  const int port = FreePort();
  std::vector<R> results(world);
  std::vector<std::string> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        model::Rendezvous rv;
        rv.port = port;
        rv.rank = r;
        rv.world_size = world;
        rv.timeout = std::chrono::seconds(60);
        auto group = model::ConnectGloo(rv);
        if (!group.ok()) {
          errors[r] = group.status().ToString();
          return;
        }
        results[r] = fn(r, *group);
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) {
    if (!errors[r].empty()) {
      throw std::runtime_error("rank " + std::to_string(r) + ": " + errors[r]);
    }
  }
  return results;
}

}  // namespace bitsweep::testing
