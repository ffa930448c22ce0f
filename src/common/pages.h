// Advice to the kernel about pages of a read-only file mapping (madvise), shared by the merge
// (prefetch the next tensor's inputs, drop consumed ones) and the engine (drop the bytes of weights
// it keeps packed copies of).
#pragma once

#include <cstddef>

namespace evomerge {

// madvise(advice) on the whole pages of [data, data + bytes) (the first rounded down to its page).
// Advisory only; errors are ignored.
void advise_pages(const void* data, size_t bytes, int advice);

// Drops [data, data + bytes)'s pages from this process's resident set (MADV_DONTNEED). Only for
// read-only file mappings: their pages stay in the page cache and refault from it if touched again
// (on anonymous memory this would zero the bytes).
void release_mapped_pages(const void* data, size_t bytes);

}  // namespace evomerge
