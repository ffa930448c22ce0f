// Fuzz target: model.safetensors.index.json text. Accepted shard names must be plain file names.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "io/model_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evomerge;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto map = parse_safetensors_index(text, "fuzz.index.json");
    for (const auto& [name, shard] : map) {
      if (shard.empty() || shard.find('/') != std::string::npos || shard.find("..") != std::string::npos ||
          shard.find('\\') != std::string::npos || shard.find('\0') != std::string::npos)
        std::abort();
    }
  } catch (const Error&) {
  }
  return 0;
}
