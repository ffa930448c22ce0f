// Fuzz target: a mergekit YAML merge config through parse_merge_config, then the YAML evomerge
// writes for it (mergekit_config.yml, exported recipes) parsed again. Anything but an
// evomerge::Error is a finding (a yaml-cpp or nlohmann exception escaping, a crash, a sanitizer
// report).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.h"
#include "merge/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const evomerge::MergeConfig c = evomerge::parse_merge_config(text, "fuzz-merge.yml");
    const std::string written = evomerge::merge_config_to_yaml(c);
    (void)evomerge::parse_merge_config(written, "fuzz-merge-written.yml");
  } catch (const evomerge::Error&) {
  }
  return 0;
}
