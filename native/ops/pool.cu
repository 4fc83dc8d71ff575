// CUDA pooling: one thread per output for windows (the CPU loop's order), one warp per plane for the
// global pools.
#include "ops/pool_cuda.h"

namespace facesight {
namespace {

using namespace cuda_detail;

__global__ void WindowPoolKernel(const PoolCudaParams p, const float* x, float* y) {
  const int64_t total = p.N * p.C * p.OH * p.OW;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, plane = i / (p.OW * p.OH);
    const float* xp = x + plane * p.H * p.W;
    const int64_t h0 = oh * p.stride_h - p.pad_top, w0 = ow * p.stride_w - p.pad_left;
    float acc = p.is_max ? -INFINITY : 0.f;
    int64_t count = 0;
    for (int64_t kh = 0; kh < p.kernel_h; ++kh) {
      const int64_t ih = h0 + kh * p.dilation_h;
      for (int64_t kw = 0; kw < p.kernel_w; ++kw) {
        const int64_t iw = w0 + kw * p.dilation_w;
        const bool in_padded = ih < p.H + p.pad_bottom && iw < p.W + p.pad_right;
        if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) {
          if (p.count_include_pad && in_padded) ++count;
          continue;
        }
        const float v = xp[ih * p.W + iw];
        acc = p.is_max ? StdMax(acc, v) : Add(acc, v);
        ++count;
      }
    }
    y[i] = p.is_max ? acc : (count ? acc / static_cast<float>(count) : 0.f);
  }
}

constexpr int kWarpsPerBlock = 8;

__global__ void GlobalPoolKernel(const PoolCudaParams p, const float* x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t planes = p.N * p.C, hw = p.H * p.W;
  for (int64_t plane = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; plane < planes;
       plane += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const float* xp = x + plane * hw;
    float acc = p.is_max ? -INFINITY : 0.f;
    for (int64_t i = lane; i < hw; i += 32) acc = p.is_max ? StdMax(acc, xp[i]) : acc + xp[i];
    for (int off = 16; off > 0; off >>= 1) {
      const float o = __shfl_xor_sync(0xffffffffu, acc, off);
      acc = p.is_max ? StdMax(acc, o) : acc + o;
    }
    if (lane == 0) y[plane] = p.is_max ? acc : acc / static_cast<float>(hw);
  }
}

}  // namespace

size_t PoolCudaWorkspaceSize(const PoolCudaParams&) { return 0; }

CudaStatus PoolCuda(const PoolCudaParams& p, const float* x, float* y, void*, size_t, cudaStream_t stream) {
  if (p.N < 0 || p.C < 0 || p.H <= 0 || p.W <= 0) return CudaStatus::Invalid("PoolCuda: bad input size");
  if (p.global) {
    const int64_t planes = p.N * p.C;
    if (planes == 0) return CudaStatus::Ok();
    const int64_t blocks = (planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
    GlobalPoolKernel<<<static_cast<unsigned>(blocks < 65535 ? blocks : 65535), 32 * kWarpsPerBlock, 0, stream>>>(p, x, y);
    return LastLaunchStatus();
  }
  if (p.kernel_h <= 0 || p.kernel_w <= 0 || p.stride_h <= 0 || p.stride_w <= 0 || p.dilation_h <= 0 || p.dilation_w <= 0)
    return CudaStatus::Invalid("PoolCuda: kernel, strides and dilations must be ≥ 1");
  const int64_t total = p.N * p.C * p.OH * p.OW;
  if (total <= 0) return CudaStatus::Ok();
  const int64_t blocks = (total + 255) / 256;
  WindowPoolKernel<<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), 256, 0, stream>>>(p, x, y);
  return LastLaunchStatus();
}

}  // namespace facesight
