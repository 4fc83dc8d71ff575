#include "common/devices.h"

#include <thread>

#include "common/cpu_features.h"

namespace facesight {

std::vector<DeviceInfo> ListDevices() {
  std::vector<DeviceInfo> devices;
  DeviceInfo cpu;
  cpu.name = "cpu";
  cpu.available = true;
  cpu.detail = std::string("SIMD ") + IsaName(BestIsa()) + ", " + std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
  devices.push_back(cpu);
#if defined(FACESIGHT_WITH_CUDA)
  devices.push_back(ProbeCuda());
#else
  devices.push_back(DeviceInfo{"cuda", false, "this build of facesight has no CUDA kernels (nvcc was not found when it was built)"});
#endif
  return devices;
}

}  // namespace facesight
