// Internal to the inference stage: the CUDA backend (built when CMake finds the CUDA toolkit;
// EVOMERGE_HAVE_CUDA). bf16 weights on the device, f32 accumulation (cuBLASLt), f32 residual
// stream and KV caches, own kernels for everything else (cuda/kernels.h).
#pragma once

#include <memory>

#include "infer/backend.h"

namespace evomerge::infer_detail {

// Throws Error when no CUDA device `options.device.ordinal` is usable.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
// Number of CUDA devices the driver reports (0 without a driver or a GPU).
int cuda_device_count();

}  // namespace evomerge::infer_detail
