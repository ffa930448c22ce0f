// Internal: reads a gzip-compressed file (the committed golden tokenizer.json.gz files); used by the
// tests and the bench, which is why it lives in the stage library.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace evomerge::tok {

// Throws evomerge::Error naming the file when it cannot be read or inflates past max_bytes.
std::string read_gzip_file(const std::filesystem::path& path, size_t max_bytes = 256u << 20);

}  // namespace evomerge::tok
