// Fuzz target: config.json text through the config parser; an accepted config must give a bounded,
// consistent tensor list (no overflow, no runaway allocation in expected_tensors).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "arch/arch.h"
#include "arch/config.h"
#include "common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evomerge;
  nlohmann::json j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  try {
    ModelConfig c = parse_model_config(j, "fuzz-config.json");
    if (c.head_dim <= 0 || c.head_dim % 2 || c.num_attention_heads % c.num_key_value_heads) std::abort();
    // Small configs only past this point: the fuzzer would otherwise spend its time building huge lists.
    if (c.num_hidden_layers > 64) return 0;
    int64_t params = parameter_count(c);
    if (params <= 0) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
