// Bit-exact port of the parts of CPython's `random` module that the study's data loaders use.
//
// The GPTQ-windows calibration procedure and the C4 evaluation fallback pick documents and
// offsets with `random.seed(0); random.randint(a, b)`. Reproducing their samples needs the same
// generator: MT19937 seeded by init_by_array(key = 32-bit words of |seed|), and randint built on
// getrandbits with rejection sampling (CPython's _randbelow_with_getrandbits).
// Not thread-safe; one instance per stream.
#pragma once

#include <array>
#include <cstdint>

namespace bitsweep {

class PythonRandom {
 public:
  // Equivalent to `random.seed(seed)` for a non-negative integer seed.
  explicit PythonRandom(uint64_t seed);

  // random.getrandbits(k) for 1 <= k <= 64.
  uint64_t GetRandBits(int k);
  // random.randint(a, b): uniform integer in [a, b]. REQUIRES: a <= b.
  int64_t RandInt(int64_t a, int64_t b);
  // random.random(): uniform double in [0, 1) with 53 random bits.
  double Random();

 private:
  uint32_t NextU32();
  std::array<uint32_t, 624> mt_{};
  int index_ = 624;
};

}  // namespace bitsweep
