#include "common/pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace evomerge {

void advise_pages(const void* data, size_t bytes, int advice) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  const uintptr_t e = reinterpret_cast<uintptr_t>(data) + bytes;
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, advice);
}

void release_mapped_pages(const void* data, size_t bytes) {
  advise_pages(data, bytes, MADV_DONTNEED);
}

}  // namespace evomerge
