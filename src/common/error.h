// Error strategy (one per condition, never both):
//  - Recoverable, caused by outside input (a corrupt file, a bad config field, a missing tensor):
//    throw evomerge::Error. Its message reads "[stage] what, where", e.g.
//    "[safetensors] model.safetensors: tensor 'lm_head.weight': data_offsets end 12 > buffer 8".
//    The CLI catches it, prints it once and exits with status 1.
//  - Programmer errors (broken internal invariants): EM_ASSERT, which aborts with file and line.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace evomerge {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Throws Error("[stage] " + formatted message).
template <typename... Args>
[[noreturn]] void fail(std::string_view stage, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format("[{}] {}", stage, fmt::format(format, std::forward<Args>(args)...)));
}

[[noreturn]] void assert_failed(const char* expr, const char* file, int line, const char* msg);

}  // namespace evomerge

#define EM_ASSERT(cond)                                                             \
  do {                                                                              \
    if (!(cond)) ::evomerge::assert_failed(#cond, __FILE__, __LINE__, nullptr);     \
  } while (0)
#define EM_ASSERT_MSG(cond, msg)                                                    \
  do {                                                                              \
    if (!(cond)) ::evomerge::assert_failed(#cond, __FILE__, __LINE__, (msg));       \
  } while (0)
