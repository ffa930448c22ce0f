// Content fingerprints of a run's inputs, so that resuming a search over changed model weights or
// task data is noticed (the run store records them; docs/run-store.md).
//
// A file's fingerprint covers its size and bytes: small files (<= 8 MiB: configs, tokenizers, task
// data) are hashed whole; a large file (weights) is hashed over its first MiB, its whole
// safetensors header when it is one, 64 blocks of 64 KiB spread evenly over the rest and its last
// 64 KiB, about 5 MB read per file whatever its size. Rewritten weights change the header, the size
// or the sampled blocks in practice; a change confined to unsampled bytes of a same-sized file is
// not seen (the price of resuming a 100 GB model in a second).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace evomerge {

struct ContentFingerprint {
  std::string whole;                         // 16 hex digits over every part
  std::map<std::string, std::string> parts;  // file name -> its fingerprint
};

// One file (Error naming it when it cannot be read).
std::string fingerprint_file(const std::filesystem::path& path);

// Every regular file directly in `dir` (hidden files and sub-folders skipped), keyed by file name.
ContentFingerprint fingerprint_folder(const std::filesystem::path& dir);

// The given files, keyed by their path as given.
ContentFingerprint fingerprint_files(const std::vector<std::filesystem::path>& files);

}  // namespace evomerge
