// CUDA Resize / Upsample on NCHW, nearest and bilinear, with the coordinate transformation and
// nearest modes resize.cpp supports (the op resolves opset defaults and Upsample's fixed modes; copy
// its resolved values here). Sample positions in float then double, exactly as the CPU op, and
// explicitly rounded lerps: results equal the CPU op's.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"

namespace facesight {

enum class ResizeCoordCuda : int32_t { kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kHalfPixelSymmetric };
enum class ResizeRoundingCuda : int32_t { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };

struct ResizeCudaParams {
  int64_t NC = 0, H = 0, W = 0;  // planes (N·C) of H×W
  int64_t OH = 0, OW = 0;
  float scale_h = 1.f, scale_w = 1.f;  // as the CPU op's Sizes: OH/H when sizes were given, else the scale
  bool linear = false;
  ResizeCoordCuda coord = ResizeCoordCuda::kHalfPixel;
  ResizeRoundingCuda rounding = ResizeRoundingCuda::kRoundPreferFloor;
};

size_t ResizeCudaWorkspaceSize(const ResizeCudaParams& params);  // 0
CudaStatus ResizeCuda(const ResizeCudaParams& params, const float* x, float* y, void* workspace, size_t workspace_bytes,
                      cudaStream_t stream);

}  // namespace facesight
