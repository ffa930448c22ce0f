#include "common/error.h"

#include <cstdio>
#include <cstdlib>

namespace evomerge {

void assert_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "evomerge: internal error: %s:%d: assertion `%s` failed%s%s\n", file, line,
               expr, msg ? ": " : "", msg ? msg : "");
  std::abort();
}

}  // namespace evomerge
