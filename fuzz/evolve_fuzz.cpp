// Fuzz target: an evolve config (YAML) through parse_evolve_config, and the canonical JSON it
// hashes. Anything but an evomerge::Error is a finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/error.h"
#include "evolve/evolve_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const evomerge::EvolveConfig c =
        evomerge::parse_evolve_config(text, "fuzz-evolve.yml", "/nonexistent");
    (void)c.to_json().dump();
  } catch (const evomerge::Error&) {
  }
  return 0;
}
