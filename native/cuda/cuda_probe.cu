// Probes the CUDA runtime. cudart is linked statically, so this runs (and reports "no driver")
// on machines without any NVIDIA software.
#include <cuda_runtime.h>

#include <string>

#include "common/devices.h"

namespace facesight {

DeviceInfo ProbeCuda() {
  DeviceInfo info;
  info.name = "cuda";
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    info.detail = std::string("CUDA runtime reports: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error
    return info;
  }
  if (count == 0) {
    info.detail = "no CUDA device found";
    return info;
  }
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    info.detail = "cudaGetDeviceProperties failed";
    return info;
  }
  info.available = true;
  info.detail = std::string(prop.name) + ", compute capability " + std::to_string(prop.major) + "." +
                std::to_string(prop.minor) + ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB (" +
                std::to_string(count) + " device" + (count > 1 ? "s" : "") + ")";
  return info;
}

}  // namespace facesight
