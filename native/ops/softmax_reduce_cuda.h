// CUDA Softmax / LogSoftmax along the last (contiguous) axis — the face models' only use (opset ≥ 13
// with axis −1, or opset < 13 with the axis at the last dimension: both are rows × n) — and the L2
// normalisation of embeddings, the ReduceL2(axis = last, keepdims) + Div pattern as one kernel:
// y = x / max(‖x‖₂ + add_eps, min_norm) per row (add_eps = min_norm = 0 is exactly ReduceL2 + Div).
// One warp per row; sums in a different order than the CPU op (≤ a few ulp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"

namespace facesight {

struct SoftmaxCudaParams {
  int64_t rows = 0, n = 0;
  bool log = false;
};
size_t SoftmaxCudaWorkspaceSize(const SoftmaxCudaParams& params);  // 0
CudaStatus SoftmaxCuda(const SoftmaxCudaParams& params, const float* x, float* y, void* workspace,
                       size_t workspace_bytes, cudaStream_t stream);

struct L2NormCudaParams {
  int64_t rows = 0, n = 0;
  float add_eps = 0.f, min_norm = 0.f;
};
size_t L2NormCudaWorkspaceSize(const L2NormCudaParams& params);  // 0
CudaStatus L2NormCuda(const L2NormCudaParams& params, const float* x, float* y, void* workspace,
                      size_t workspace_bytes, cudaStream_t stream);

}  // namespace facesight
