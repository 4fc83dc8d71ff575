// CUDA Softmax and L2 normalisation: one warp per row, shuffle reductions.
#include "ops/softmax_reduce_cuda.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kWarps = 8;

__device__ __forceinline__ float WarpMax(float v) {
  for (int off = 16; off > 0; off >>= 1) v = StdMax(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
__device__ __forceinline__ double WarpSumD(double v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__global__ void SoftmaxKernel(const SoftmaxCudaParams p, const float* x, float* y) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < p.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const float* xr = x + row * p.n;
    float* yr = y + row * p.n;
    float mx = -INFINITY;
    for (int64_t k = lane; k < p.n; k += 32) mx = StdMax(mx, xr[k]);
    mx = WarpMax(mx);
    float sum = 0.f;
    for (int64_t k = lane; k < p.n; k += 32) {
      const float v = ExpF(Sub(xr[k], mx));
      if (!p.log) yr[k] = v;
      sum += v;
    }
    sum = WarpSum(sum);
    if (p.log) {
      const float ls = static_cast<float>(log(static_cast<double>(sum)));
      for (int64_t k = lane; k < p.n; k += 32) yr[k] = Sub(Sub(xr[k], mx), ls);
    } else {
      const float inv = __fdiv_rn(1.f, sum);
      for (int64_t k = lane; k < p.n; k += 32) yr[k] = Mul(yr[k], inv);
    }
  }
}

__global__ void L2NormKernel(const L2NormCudaParams p, const float* x, float* y) {
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32; row < p.rows;
       row += static_cast<int64_t>(gridDim.x) * kWarps) {
    const float* xr = x + row * p.n;
    double acc = 0.0;  // as the CPU ReduceL2
    for (int64_t k = lane; k < p.n; k += 32) acc += static_cast<double>(xr[k]) * xr[k];
    acc = WarpSumD(acc);
    const float norm = static_cast<float>(sqrt(acc));
    const float d = StdMax(Add(norm, p.add_eps), p.min_norm);
    for (int64_t k = lane; k < p.n; k += 32) y[row * p.n + k] = __fdiv_rn(xr[k], d);
  }
}

unsigned RowBlocks(int64_t rows) {
  const int64_t b = (rows + kWarps - 1) / kWarps;
  return static_cast<unsigned>(b < 65535 ? b : 65535);
}

}  // namespace

size_t SoftmaxCudaWorkspaceSize(const SoftmaxCudaParams&) { return 0; }
size_t L2NormCudaWorkspaceSize(const L2NormCudaParams&) { return 0; }

CudaStatus SoftmaxCuda(const SoftmaxCudaParams& p, const float* x, float* y, void*, size_t, cudaStream_t stream) {
  if (p.rows < 0 || p.n < 0) return CudaStatus::Invalid("SoftmaxCuda: negative size");
  if (p.rows == 0 || p.n == 0) return CudaStatus::Ok();
  SoftmaxKernel<<<RowBlocks(p.rows), 32 * kWarps, 0, stream>>>(p, x, y);
  return LastLaunchStatus();
}

CudaStatus L2NormCuda(const L2NormCudaParams& p, const float* x, float* y, void*, size_t, cudaStream_t stream) {
  if (p.rows < 0 || p.n < 0) return CudaStatus::Invalid("L2NormCuda: negative size");
  if (p.rows == 0 || p.n == 0) return CudaStatus::Ok();
  L2NormKernel<<<RowBlocks(p.rows), 32 * kWarps, 0, stream>>>(p, x, y);
  return LastLaunchStatus();
}

}  // namespace facesight
