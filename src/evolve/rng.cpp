#include "evolve/rng.h"

#include <cmath>
#include <numbers>

namespace evomerge {

uint64_t splitmix64(uint64_t& x) {
  x += 0x9e3779b97f4a7c15ULL;
  uint64_t z = x;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

namespace {
inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}
}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& word : state_.s) word = splitmix64(x);
  // splitmix64 never yields four zero words in a row, so the xoshiro state is valid.
}

Rng Rng::from_state(const State& state) {
  Rng rng(0);
  rng.state_ = state;
  return rng;
}

uint64_t Rng::next_u64() {
  auto& s = state_.s;
  const uint64_t result = rotl(s[1] * 5, 7) * 9;
  const uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double Rng::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

uint64_t Rng::below(uint64_t n) {
  // Lemire-free simple rejection: draw from the largest multiple of n below 2^64.
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
  uint64_t v;
  do v = next_u64();
  while (v >= limit);
  return v % n;
}

double Rng::normal() {
  if (state_.has_spare) {
    state_.has_spare = false;
    return state_.spare;
  }
  // u1 in (0, 1] so log(u1) is finite; u2 in [0, 1).
  const double u1 = static_cast<double>((next_u64() >> 11) + 1) * 0x1.0p-53;
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 2.0 * std::numbers::pi * u2;
  state_.spare = r * std::sin(theta);
  state_.has_spare = true;
  return r * std::cos(theta);
}

}  // namespace evomerge
