// A loaded network: parses ONNX, rewrites the graph, and runs it. For every new combination of input
// shapes it builds a plan (shapes inferred, constants folded, kernels bound, one arena laid out by
// value lifetimes) and keeps it, so repeated runs of the same shape allocate nothing but outputs.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/buffer_cache.h"
#include "common/tensor.h"
#include "common/thread_pool.h"
#include "engine/network.h"
#include "engine/onnx_model.h"
#include "engine/op.h"

namespace facesight {

struct EngineOptions {
  int threads = 1;
  // A pool shared with other engines that never run at the same time (the stages of one pipeline),
  // so a pipeline uses `threads` threads in all; null: the engine makes its own pool of `threads`.
  std::shared_ptr<ThreadPool> pool;
  int max_cached_plans = 8;
  // Keep convolution chains in NCHW16c (ops/layout.h). FACESIGHT_LAYOUT=nchw turns it off, for A/B
  // measurements.
  bool blocked_layout = true;
};

struct Plan;

class Engine : public Network {
 public:
  static std::unique_ptr<Engine> Load(const uint8_t* data, size_t size, const EngineOptions& options);
  ~Engine() override;

  const std::vector<ValueInfo>& inputs() const override { return model_.inputs; }
  const std::vector<ValueInfo>& outputs() const override { return model_.outputs; }
  const char* device() const override { return "cpu"; }
  const char* precision() const override { return "fp32"; }
  int threads() const override { return pool_->threads(); }
  ThreadPool* pool() const { return pool_.get(); }

  // Inputs in the order of inputs(). Thread-safe: concurrent calls run one after another.
  // Throws FaceException: E_INPUT for shapes the graph cannot take or non-finite values.
  std::vector<OutputTensor> Run(const std::vector<InputView>& inputs) override;

 private:
  Engine(OnnxModel model, const EngineOptions& options);
  std::shared_ptr<Plan> GetPlan(const std::vector<InputView>& inputs);
  std::shared_ptr<Plan> BuildPlan(const std::vector<Shape>& shapes);

  OnnxModel model_;
  EngineOptions options_;
  std::vector<std::unique_ptr<Op>> ops_;
  std::shared_ptr<ThreadPool> pool_;
  std::mutex mutex_;
  std::list<std::pair<std::vector<Shape>, std::shared_ptr<Plan>>> plans_;  // most recent first
  std::vector<float> arena_;  // shared by every plan (see BuildPlan)
};

}  // namespace facesight
