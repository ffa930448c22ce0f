// Fuzz target: header JSON text alone, against a data buffer size taken from the first 4 input bytes
// (so the fuzzer can make offsets match and reach the later checks).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evomerge;
  if (size < 4) return 0;
  uint64_t data_bytes = uint64_t(data[0]) | uint64_t(data[1]) << 8 | uint64_t(data[2]) << 16 | uint64_t(data[3]) << 24;
  std::string_view text(reinterpret_cast<const char*>(data + 4), size - 4);
  try {
    auto header = parse_safetensors_header(text, data_bytes, "fuzz-header");
    uint64_t total = 0;
    for (const auto& t : header.tensors) total += t.nbytes();
    if (total != data_bytes) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
