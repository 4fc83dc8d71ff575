// A loaded network run on a CUDA device. Loads ONNX like Engine (the same parse and graph passes, the
// same ops for shape inference and plan-time folding), and for every new combination of input shapes
// builds a device plan: shapes inferred, constant subgraphs folded on the host, views aliased, one
// device arena laid out by value lifetimes, each remaining node bound to its CUDA launcher
// (ops/*_cuda.h). Weights are uploaded once per engine (and converted to fp16 once in fp16 mode).
// A plan's first run is eager; it is then captured as a CUDA graph that later runs of that shape replay.
//
// Precision kFp16: Conv / Gemm / MatMul run on fp16 data (tensor cores, fp32 accumulation) and
// Concat / Transpose / views pass fp16 through; the other ops run in fp32, with casts inserted where a
// value changes precision. Inputs and outputs are fp32 in both modes.
//
// Ops with a CUDA kernel: Conv (fused BatchNorm and activations), Gemm, MatMul, MaxPool, AveragePool,
// GlobalAveragePool, GlobalMaxPool, Resize, Upsample, Concat, Transpose, Add, Sub, Mul, Div, Pow, Max,
// Min, PRelu, Relu, LeakyRelu, Sigmoid, Clip, Tanh, Exp, HardSigmoid, HardSwish, BatchNormalization
// (constant parameters), Softmax, LogSoftmax (along the last axis), the L2 normalisation chain
// (ReduceL2 or Sqrt(ReduceSumSquare), then optional Add / Clip / Max of a constant, then Div), and the
// reshape family as views. Other nodes that are not folded fail at plan time with E_MODEL.
//
// Built only with CUDA (cuda_engine.cu); the header needs no CUDA headers (common/cuda_util.h).
#pragma once
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/cuda_util.h"
#include "engine/engine.h"  // InputView, OutputTensor
#include "engine/onnx_model.h"
#include "engine/op.h"
#include "ops/gemm_cuda.h"  // CudaDType

namespace facesight {

enum class CudaPrecision { kFp32, kFp16 };

struct CudaEngineOptions {
  CudaPrecision precision = CudaPrecision::kFp32;
  int device = 0;
  int max_cached_plans = 8;
  // Capture each plan as a CUDA graph after its first run and replay it (FACESIGHT_PROFILE, which
  // times every step, turns it off).
  bool cuda_graphs = true;
};

// A caller's fp32 input already on the device.
struct DeviceInput {
  const float* data = nullptr;
  Shape shape;
};

struct CudaPlan;
struct CudaL2Chain;

class CudaEngine : public Network {
 public:
  // Parses and checks the model on the host; touches no device (that happens at the first plan).
  static std::unique_ptr<CudaEngine> Load(const uint8_t* data, size_t size, const CudaEngineOptions& options);
  ~CudaEngine() override;
  CudaEngine(const CudaEngine&) = delete;
  CudaEngine& operator=(const CudaEngine&) = delete;

  const std::vector<ValueInfo>& inputs() const override { return model_.inputs; }
  const std::vector<ValueInfo>& outputs() const override { return model_.outputs; }
  const char* device() const override { return "cuda"; }
  const char* precision() const override { return options_.precision == CudaPrecision::kFp16 ? "fp16" : "fp32"; }
  int threads() const override { return 1; }
  const CudaEngineOptions& options() const { return options_; }

  // Host in, host out (through pinned staging buffers), inputs in the order of inputs(). Waits for
  // the result. Thread-safe: concurrent calls run one after another.
  // Throws FaceException: E_INPUT (shapes, non-finite values), E_MODEL (a node without a CUDA kernel),
  // E_DEVICE (no usable device, CUDA errors).
  std::vector<OutputTensor> Run(const std::vector<InputView>& inputs) override;

  // The output shapes for these input shapes (builds the plan if needed).
  std::vector<Shape> OutputShapes(const std::vector<Shape>& input_shapes);

  // Device in, device out, for pipelines that keep tensors on the GPU: fp32 device pointers, outputs
  // sized by OutputShapes. Enqueued on stream() and not waited for: the inputs must be complete before
  // work on stream() reaches them (write them on stream(), or synchronise first), and the outputs are
  // complete once stream() has run this (Synchronize(), or an event recorded on stream()). Inputs are
  // copied into the plan's buffers, so they may be overwritten once stream() has passed this call.
  void RunDevice(const std::vector<DeviceInput>& inputs, const std::vector<float*>& outputs);
  cudaStream_t stream();  // the engine's stream (created on first use)
  void Synchronize();

  // The steps a plan for these input shapes would run, one line per launch ("Conv 'name' fp16 [...]"),
  // built on the host only: no device needed. Throws what planning throws (E_MODEL, E_INPUT).
  std::vector<std::string> DescribePlan(const std::vector<Shape>& input_shapes);

 private:
  CudaEngine(OnnxModel model, const CudaEngineOptions& options);
  void EnsureDevice();
  std::shared_ptr<CudaPlan> GetPlan(const std::vector<Shape>& shapes);
  std::shared_ptr<CudaPlan> BuildPlan(const std::vector<Shape>& shapes);
  void Execute(CudaPlan& plan);
  const void* Weight(const HostTensor* tensor, CudaDType dtype);

  OnnxModel model_;
  CudaEngineOptions options_;
  std::vector<std::unique_ptr<Op>> ops_;
  std::map<size_t, std::shared_ptr<CudaL2Chain>> l2_chains_;  // by the index of the chain's Div node
  std::set<size_t> l2_chain_members_;                         // nodes an L2 chain absorbs
  std::set<const HostTensor*> initializers_;                  // uploaded once per engine

  std::mutex mutex_;
  bool device_ready_ = false;
  cudaStream_t stream_ = nullptr;
  struct DeviceMemory;
  std::unique_ptr<DeviceMemory> memory_;  // arena, weights, pinned staging
  std::list<std::pair<std::vector<Shape>, std::shared_ptr<CudaPlan>>> plans_;  // most recent first
};

}  // namespace facesight
