// Fuzz target: a whole safetensors file image (length prefix, header, data buffer) through the
// validating parser. Accepted files must satisfy the invariants the zero-copy views rely on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "common/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace evomerge;
  std::span<const std::byte> file(reinterpret_cast<const std::byte*>(data), size);
  uint64_t start = 0;
  SafetensorsHeader header;
  try {
    header = parse_safetensors_buffer(file, "fuzz.safetensors", &start);
  } catch (const Error&) {
    return 0;  // rejected cleanly
  }
  // Accepted: spans tile [0, size - start) in order, each sized dtype x shape.
  uint64_t expected = 0;
  for (const auto& t : header.tensors) {
    if (t.data_begin != expected || t.data_end < t.data_begin) std::abort();
    if (static_cast<uint64_t>(shape_numel(t.shape)) * dtype_size(t.dtype) != t.nbytes()) std::abort();
    expected = t.data_end;
    if (t.nbytes()) {  // touch the first and last byte: ASan would catch a view outside the buffer
      volatile std::byte first = file[start + t.data_begin];
      volatile std::byte last = file[start + t.data_end - 1];
      (void)first;
      (void)last;
    }
  }
  if (start + expected != size) std::abort();
  return 0;
}
