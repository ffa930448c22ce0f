// The optimiser's own random number generator, so a seeded run replays bit for bit on any standard
// library: xoshiro256** (Blackman & Vigna) seeded through splitmix64, uniforms from the top 53
// bits, and normals by the Box-Muller transform written here (std::normal_distribution's output is
// implementation-defined and differs between libstdc++ and libc++).
//
// The only platform-dependent pieces are std::log/std::cos/std::sin in normal(); on one machine and
// one libm they are deterministic, which is what resume needs.
#pragma once

#include <array>
#include <cstdint>

namespace evomerge {

class Rng {
 public:
  // The complete state (for serialisation): the four xoshiro words and the cached second normal.
  struct State {
    std::array<uint64_t, 4> s{};
    bool has_spare = false;
    double spare = 0.0;
  };

  explicit Rng(uint64_t seed = 0);
  static Rng from_state(const State& state);

  uint64_t next_u64();
  // Uniform in [0, 1), 53 random bits.
  double uniform();
  // Uniform integer in [0, n) without modulo bias (n > 0).
  uint64_t below(uint64_t n);
  // Standard normal N(0, 1).
  double normal();

  const State& state() const { return state_; }

 private:
  State state_;
};

// One step of splitmix64 (advances `x`, returns the mixed output). Used to seed, and to derive
// independent sub-seeds (e.g. the item-subset RNG) from one run seed.
uint64_t splitmix64(uint64_t& x);

}  // namespace evomerge
