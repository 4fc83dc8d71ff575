// CUDA Transpose: a grid-stride loop over y, one element per thread step (the element type only sets
// the copy width).
#include "ops/transpose_cuda.h"

namespace facesight {
namespace {

using namespace cuda_detail;

template <typename T>
__global__ void TransposeKernel(const TransposeCudaParams p, const T* x, T* y, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t src = 0, rest = i;
    for (int k = p.rank - 1; k >= 0; --k) {
      src += rest % p.out_dims[k] * p.in_strides[k];
      rest /= p.out_dims[k];
    }
    y[i] = x[src];
  }
}

}  // namespace

size_t TransposeCudaWorkspaceSize(const TransposeCudaParams&) { return 0; }

CudaStatus TransposeCuda(const TransposeCudaParams& p, const void* x, void* y, void*, size_t, cudaStream_t stream) {
  if (p.rank < 0 || p.rank > kTransposeCudaMaxRank) return CudaStatus::Invalid("TransposeCuda: rank out of range");
  int64_t total = 1;
  for (int k = 0; k < p.rank; ++k) {
    if (p.out_dims[k] < 0) return CudaStatus::Invalid("TransposeCuda: negative dimension");
    total *= p.out_dims[k];
  }
  if (total == 0) return CudaStatus::Ok();
  const int64_t blocks = (total + 255) / 256;
  const unsigned grid = static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20));
  if (p.dtype == CudaDType::kF16)
    TransposeKernel<<<grid, 256, 0, stream>>>(p, static_cast<const uint16_t*>(x), static_cast<uint16_t*>(y), total);
  else
    TransposeKernel<<<grid, 256, 0, stream>>>(p, static_cast<const float*>(x), static_cast<float*>(y), total);
  return LastLaunchStatus();
}

}  // namespace facesight
