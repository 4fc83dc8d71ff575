// CUDA Concat along any axis (channels for the detector heads): one launch, a strided copy per input.
// With the axis at `a` of a shape D: outer = D[0]·…·D[a−1], inner = D[a+1]·…; input i has
// axis_sizes[i] along the axis. y[o][offset_i + j] = x_i[o][j] for j < axis_sizes[i]·inner.
// fp32 or fp16 data (a copy: the element type only sets its width).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "ops/gemm_cuda.h"  // CudaDType

namespace facesight {

constexpr int kConcatCudaMaxInputs = 16;

struct ConcatCudaParams {
  int64_t outer = 1, inner = 1;
  int32_t count = 0;  // ≤ kConcatCudaMaxInputs
  int64_t axis_sizes[kConcatCudaMaxInputs] = {};
  CudaDType dtype = CudaDType::kF32;  // of every input and y
};

struct ConcatCudaPtrs {
  const void* inputs[kConcatCudaMaxInputs] = {};
  void* y = nullptr;
};

size_t ConcatCudaWorkspaceSize(const ConcatCudaParams& params);  // 0
CudaStatus ConcatCuda(const ConcatCudaParams& params, const ConcatCudaPtrs& ptrs, void* workspace,
                      size_t workspace_bytes, cudaStream_t stream);

}  // namespace facesight
