// Helpers shared by the test suites (header-only; include from *_test.cpp files only).
#pragma once

#include <functional>
#include <string>

#include "common/error.h"

namespace evomerge::testing_util {

// The message of the evomerge::Error that `f` throws, or "(no error)". Tests then check the
// message names the file and the field.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace evomerge::testing_util
