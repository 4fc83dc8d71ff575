// CUDA MaxPool / AveragePool (2-D, NCHW) and GlobalAveragePool / GlobalMaxPool, as pool.cpp computes
// them: the window geometry resolved by ResolveWindow2d (pads, auto_pad, ceil_mode, dilation), average
// over the counted positions (count_include_pad counts explicit padding, never the ceil_mode
// overhang). Windowed pools: the CPU's summation order, so results are equal; global pools reduce a
// plane in parallel (order differs: ≤ a few ulp).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"

namespace facesight {

struct PoolCudaParams {
  int64_t N = 0, C = 0, H = 0, W = 0;
  bool is_max = true;
  bool global = false;  // Global{Average,Max}Pool: output N×C×1×1; the window fields are ignored
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t OH = 0, OW = 0;
  bool count_include_pad = false;
};

size_t PoolCudaWorkspaceSize(const PoolCudaParams& params);  // 0
CudaStatus PoolCuda(const PoolCudaParams& params, const float* x, float* y, void* workspace, size_t workspace_bytes,
                    cudaStream_t stream);

}  // namespace facesight
