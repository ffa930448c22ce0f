// Fuzz target: PEFT adapter_config.json text through parse_adapter_config. Anything but an
// evomerge::Error (a crash, a json type_error) is a finding.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "merge/adapter_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const evomerge::AdapterConfig c =
        evomerge::parse_adapter_config(text, "fuzz/adapter_config.json");
    if (!(c.r > 0) || !std::isfinite(c.alpha)) std::abort();
  } catch (const evomerge::Error&) {
  }
  return 0;
}
