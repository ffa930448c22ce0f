// Which CPU kernels the inference engine runs on this machine, in one line for logs (`evomerge
// --verbose`): the GEMM kernel chosen (EVOMERGE_GEMM or the fastest runnable), what weights of
// other dtypes fall back to, the attention kernel of the same ISA, and every kernel with why it
// can or cannot run here.
#pragma once

#include <string>

namespace evomerge {

std::string cpu_kernel_summary();

}  // namespace evomerge
