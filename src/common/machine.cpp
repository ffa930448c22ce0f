#include "common/machine.h"

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

namespace evomerge {

namespace {
// The value of the first "model name" line of /proc/cpuinfo (x86; other CPUs: "").
std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  for (int n = 0; n < 10000 && std::getline(in, line); ++n)
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) break;
      auto value = line.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value.substr(0, 120);
    }
  return "";
}
}  // namespace

int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

std::string machine_summary() {
  std::string s = cpu_model();
  if (s.empty()) s = "unknown CPU";
  s += fmt::format(" | {} cores", std::thread::hardware_concurrency());
  if (const int64_t bytes = physical_memory_bytes(); bytes > 0)
    s += fmt::format(" | {:.1f} GB RAM", static_cast<double>(bytes) / 1e9);
  utsname u{};
  if (uname(&u) == 0) s += fmt::format(" | {} {} {}", u.sysname, u.release, u.machine);
  return s;
}

}  // namespace evomerge
