#include "engine/network.h"

#include "common/error.h"
#include "engine/engine.h"
#if defined(FACESIGHT_WITH_CUDA)
#include "engine/cuda_engine.h"
#endif

namespace facesight {

std::unique_ptr<Network> LoadNetwork(const uint8_t* data, size_t size, const NetworkOptions& options) {
  if (options.device == "cpu") {
    if (options.precision != "fp32") Fail(ErrorCode::Input, "precision '", options.precision, "' runs on CUDA only; the CPU engine computes in fp32");
    EngineOptions o;
    o.threads = options.threads;
    return Engine::Load(data, size, o);
  }
  if (options.device != "cuda") Fail(ErrorCode::Input, "Unknown device '", options.device, "' (cpu, cuda)");
#if defined(FACESIGHT_WITH_CUDA)
  CudaEngineOptions o;
  if (options.precision == "fp16") o.precision = CudaPrecision::kFp16;
  else if (options.precision != "fp32") Fail(ErrorCode::Input, "Unknown precision '", options.precision, "' (fp32, fp16)");
  o.device = options.cuda_device;
  return CudaEngine::Load(data, size, o);
#else
  Fail(ErrorCode::Device, "This build of facesight has no CUDA kernels (nvcc was not found when it was built)");
#endif
}

}  // namespace facesight
