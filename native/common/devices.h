// Which compute backends work on this machine, and why not when they don't.
#pragma once
#include <string>
#include <vector>

namespace facesight {

struct DeviceInfo {
  std::string name;        // "cpu", "cuda"
  bool available = false;
  std::string detail;      // what it is when available, why not otherwise
};

std::vector<DeviceInfo> ListDevices();

#if defined(FACESIGHT_WITH_CUDA)
// Defined in cuda/cuda_probe.cu: asks the CUDA runtime (linked statically) for devices.
DeviceInfo ProbeCuda();
#endif

}  // namespace facesight
