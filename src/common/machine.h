// A one-line description of the machine this process runs on, for run records and reports:
// "Intel(R) Xeon(R) ... | 2 cores | 7.8 GB RAM | Linux 6.1.0-18-amd64 x86_64".
#pragma once

#include <cstdint>
#include <string>

namespace evomerge {

std::string machine_summary();

// The machine's physical memory in bytes (0 when the OS does not say).
int64_t physical_memory_bytes();

}  // namespace evomerge
