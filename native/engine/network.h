// What the addon and pipelines hold: a loaded network on one device. Engine runs it on the CPU,
// CudaEngine (builds with CUDA only) on a GPU; LoadNetwork picks by device name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/onnx_model.h"
#include "common/tensor.h"
#include "common/buffer_cache.h"

namespace facesight {

// A caller's input: float32 data read in place (not copied).
struct InputView {
  const float* data = nullptr;
  Shape shape;
};

// A result handed to the caller: its own buffer (uninitialised, reused across runs of a shape).
struct OutputTensor {
  Shape shape;
  CachedFloats data;
  int64_t size() const { return NumElements(shape); }
};

class Network {
 public:
  virtual ~Network() = default;
  virtual const std::vector<ValueInfo>& inputs() const = 0;
  virtual const std::vector<ValueInfo>& outputs() const = 0;
  virtual const char* device() const = 0;     // "cpu", "cuda"
  virtual const char* precision() const = 0;  // "fp32", "fp16"
  virtual int threads() const = 0;            // host threads it computes with
  // Inputs in the order of inputs(); thread-safe (concurrent calls run one after another).
  // Throws FaceException: E_INPUT for shapes the graph cannot take or non-finite values, E_MODEL for
  // nodes the device cannot run, E_DEVICE for device failures.
  virtual std::vector<OutputTensor> Run(const std::vector<InputView>& inputs) = 0;
};

struct NetworkOptions {
  std::string device = "cpu";     // "cpu" | "cuda"
  std::string precision = "fp32"; // "fp32" | "fp16" (CUDA)
  int threads = 1;                // CPU threads
  int cuda_device = 0;
};

// Parses and checks the model (E_MODEL); for "cuda" in a build without CUDA, E_DEVICE.
std::unique_ptr<Network> LoadNetwork(const uint8_t* data, size_t size, const NetworkOptions& options);

}  // namespace facesight
