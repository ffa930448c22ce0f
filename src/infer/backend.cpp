// Device names and the backend factory.
#include "infer/backend.h"

#include "infer/engine.h"

#include <charconv>

#include "common/error.h"
#include "infer/cpu/cpu_backend.h"
#ifdef EVOMERGE_HAVE_CUDA
#include "infer/cuda/cuda_backend.h"
#endif

namespace evomerge::infer_detail {

std::string Device::name() const {
  return kind == Kind::Cpu ? std::string("cpu") : fmt::format("cuda:{}", ordinal);
}

Device parse_device(std::string_view text) {
  Device d;
  if (text.empty() || text == "cpu") return d;
  if (text == "cuda") {
    d.kind = Device::Kind::Cuda;
    return d;
  }
  constexpr std::string_view kCuda = "cuda:";
  if (text.starts_with(kCuda)) {
    const std::string_view num = text.substr(kCuda.size());
    int ordinal = -1;
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), ordinal);
    if (ec == std::errc() && end == num.data() + num.size() && !num.empty() && ordinal >= 0 &&
        ordinal < 1024) {
      d.kind = Device::Kind::Cuda;
      d.ordinal = ordinal;
      return d;
    }
  }
  fail("infer", "device '{}' is not one of cpu, cuda, cuda:N", text);
}

}  // namespace evomerge::infer_detail

namespace evomerge {

std::string canonical_device(std::string_view device) {
  return infer_detail::parse_device(device).name();
}

}  // namespace evomerge

namespace evomerge::infer_detail {

bool cuda_built() {
#ifdef EVOMERGE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_devices() {
#ifdef EVOMERGE_HAVE_CUDA
  return cuda_device_count();
#else
  return 0;
#endif
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  if (options.device.kind == Device::Kind::Cpu) return make_cpu_backend(options);
#ifdef EVOMERGE_HAVE_CUDA
  return make_cuda_backend(options);
#else
  fail("infer",
       "device '{}': this evomerge was built without the CUDA backend (no CUDA toolkit found, "
       "or EVOMERGE_WITH_CUDA=OFF); rebuild with nvcc installed, or use --device cpu",
       options.device.name());
#endif
}

}  // namespace evomerge::infer_detail
