// tinyattn/core/random.hpp — seeded random numbers whose output is fixed by this file alone.
//
// The standard library's distributions (std::normal_distribution, std::shuffle) are allowed to differ
// between implementations, so tinyattn never uses them:
//  * SplitMix64 + Box-Muller (in double, rounded once) draws initial weights: same seed, bit-identical
//    weights with any compiler or standard library that has IEEE double log/cos/sqrt.
//  * PythonRandom reproduces CPython's random.Random(seed): MT19937 seeded with init_by_array and its
//    shuffle(), so a split made here equals the one the PyTorch reference makes with the same seed.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tinyattn/core/config.hpp"

namespace tinyattn {

// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, passes BigCrush; enough for initialisation.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1]: 53 random bits, never 0 so that log() below is finite.
  double uniform_open0() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

// Standard normal numbers by the Box-Muller transform, in pairs, in a documented order.
class NormalGenerator {
 public:
  explicit NormalGenerator(std::uint64_t seed) : bits_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2.0 * std::log(bits_.uniform_open0()));
    const double angle = 6.283185307179586476925286766559 * bits_.uniform_open0();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  SplitMix64 bits_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// CPython's Mersenne Twister (Modules/_randommodule.c), seeded as random.Random(seed) seeds it.
class PythonRandom {
 public:
  explicit PythonRandom(std::uint64_t seed) {
    // random.seed(int) feeds the 32-bit words of |seed|, least significant first, to init_by_array;
    // seed 0 becomes the single word 0.
    std::uint32_t key[2] = {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
    init_by_array(key, (seed >> 32) != 0 ? 2 : 1);
  }

  std::uint32_t next_u32() {
    if (index_ >= kN) twist();
    std::uint32_t y = state_[index_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
  }

  // random.getrandbits(k) for 1 <= k <= 32.
  std::uint32_t getrandbits(int k) { return next_u32() >> (32 - k); }

  // random._randbelow(n): rejection sampling on bit_length(n) bits, n >= 1.
  std::uint32_t randbelow(std::uint32_t n) {
    int k = 0;
    for (std::uint32_t m = n; m != 0; m >>= 1) ++k;
    std::uint32_t r = getrandbits(k);
    while (r >= n) r = getrandbits(k);
    return r;
  }

  // random.randrange(n) for n >= 1 (CPython 3: _randbelow(n)).
  std::uint32_t randrange(std::uint32_t n) { return randbelow(n); }

  // random.shuffle(x): Fisher-Yates from the back.
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (std::size_t i = items.size(); i-- > 1;) {
      const std::size_t j = randbelow(static_cast<std::uint32_t>(i + 1));
      std::swap(items[i], items[j]);
    }
  }

 private:
  static constexpr int kN = 624, kM = 397;

  void init_genrand(std::uint32_t s) {
    state_[0] = s;
    for (int i = 1; i < kN; ++i)
      state_[i] = 1812433253u * (state_[i - 1] ^ (state_[i - 1] >> 30)) + static_cast<std::uint32_t>(i);
    index_ = kN;
  }

  void init_by_array(const std::uint32_t* key, int key_length) {
    init_genrand(19650218u);
    int i = 1, j = 0;
    for (int k = (kN > key_length ? kN : key_length); k; --k) {
      state_[i] =
          (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1664525u)) + key[j] + static_cast<std::uint32_t>(j);
      ++i;
      ++j;
      if (i >= kN) {
        state_[0] = state_[kN - 1];
        i = 1;
      }
      if (j >= key_length) j = 0;
    }
    for (int k = kN - 1; k; --k) {
      state_[i] = (state_[i] ^ ((state_[i - 1] ^ (state_[i - 1] >> 30)) * 1566083941u)) - static_cast<std::uint32_t>(i);
      ++i;
      if (i >= kN) {
        state_[0] = state_[kN - 1];
        i = 1;
      }
    }
    state_[0] = 0x80000000u;
  }

  void twist() {
    for (int k = 0; k < kN; ++k) {
      const std::uint32_t y = (state_[k] & 0x80000000u) | (state_[(k + 1) % kN] & 0x7fffffffu);
      state_[k] = state_[(k + kM) % kN] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    index_ = 0;
  }

  std::array<std::uint32_t, kN> state_{};
  int index_ = kN;
};

}  // namespace tinyattn
