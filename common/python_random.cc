#include "common/python_random.h"

#include <cstddef>
#include <vector>

namespace bitsweep {
namespace {

constexpr int kN = 624;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;

}  // namespace

PythonRandom::PythonRandom(uint64_t seed) {
  // CPython's random_seed: the absolute value of the int, split into 32-bit words, least
  // significant first; zero gives the single key word 0.
  std::vector<uint32_t> key;
  if (seed == 0) key.push_back(0);
  while (seed != 0) {
    key.push_back(static_cast<uint32_t>(seed & 0xffffffffU));
    seed >>= 32;
  }
  // init_genrand(19650218)
  mt_[0] = 19650218U;
  for (int i = 1; i < kN; ++i) {
    mt_[i] = 1812433253U * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) + static_cast<uint32_t>(i);
  }
  // init_by_array
  int i = 1;
  std::size_t j = 0;
  const int key_length = static_cast<int>(key.size());
  for (int k = (kN > key_length ? kN : key_length); k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525U)) + key[j] +
             static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= key.size()) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941U)) -
             static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000U;
  index_ = kN;
}

uint32_t PythonRandom::NextU32() {
  if (index_ >= kN) {
    for (int kk = 0; kk < kN; ++kk) {
      const uint32_t y = (mt_[kk] & kUpperMask) | (mt_[(kk + 1) % kN] & kLowerMask);
      mt_[kk] = mt_[(kk + kM) % kN] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
    }
    index_ = 0;
  }
  uint32_t y = mt_[index_++];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t PythonRandom::GetRandBits(int k) {
  if (k <= 32) return NextU32() >> (32 - k);
  // CPython fills 32-bit words least significant first; the last word is shifted down.
  const uint64_t low = NextU32();
  const uint64_t high = NextU32() >> (64 - k);
  return low | (high << 32);
}

int64_t PythonRandom::RandInt(int64_t a, int64_t b) {
  const uint64_t n = static_cast<uint64_t>(b - a) + 1;
  int k = 0;
  for (uint64_t v = n; v != 0; v >>= 1) ++k;  // n.bit_length()
  uint64_t r = GetRandBits(k);
  while (r >= n) r = GetRandBits(k);
  return a + static_cast<int64_t>(r);
}

double PythonRandom::Random() {
  const uint32_t a = NextU32() >> 5;
  const uint32_t b = NextU32() >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}

}  // namespace bitsweep
