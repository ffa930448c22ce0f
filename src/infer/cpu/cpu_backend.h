// Internal to the inference stage: the CPU backend (the default, and the reference every other
// backend is held to). Parallelism is its own pool.
#pragma once

#include <memory>

#include "infer/backend.h"

namespace evomerge::infer_detail {

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);

}  // namespace evomerge::infer_detail
