// FNV-1a 64: a stable, platform-independent hash for identities (config hashes, input
// fingerprints). Not a cryptographic hash: it tells changed from unchanged, not friend from foe.
#pragma once

#include <cstdint>
#include <string_view>

namespace evomerge {

inline constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

// Continues the hash `h` over `bytes` (start with kFnvOffset).
inline uint64_t fnv1a64(std::string_view bytes, uint64_t h = kFnvOffset) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

}  // namespace evomerge
