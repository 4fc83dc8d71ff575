// CUDA Concat: grid.y = input, a grid-stride copy of its outer × (axis size · inner) block into place.
#include "ops/concat_cuda.h"

#include <algorithm>

namespace facesight {
namespace {

using namespace cuda_detail;

struct ConcatArgs {
  ConcatCudaParams p;
  ConcatCudaPtrs ptrs;
  int64_t offsets[kConcatCudaMaxInputs];  // first element of input i within an output row
  int64_t out_row;
};

template <typename T>
__global__ void ConcatKernel(const ConcatArgs a) {
  const int input = blockIdx.y;
  const int64_t row = a.p.axis_sizes[input] * a.p.inner, total = a.p.outer * row;
  const T* x = static_cast<const T*>(a.ptrs.inputs[input]);
  T* y = static_cast<T*>(a.ptrs.y) + a.offsets[input];
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = i / row, j = i % row;
    y[o * a.out_row + j] = x[i];
  }
}

}  // namespace

size_t ConcatCudaWorkspaceSize(const ConcatCudaParams&) { return 0; }

CudaStatus ConcatCuda(const ConcatCudaParams& p, const ConcatCudaPtrs& ptrs, void*, size_t, cudaStream_t stream) {
  if (p.count <= 0 || p.count > kConcatCudaMaxInputs) return CudaStatus::Invalid("ConcatCuda: 1 to 16 inputs");
  if (p.outer < 0 || p.inner < 0) return CudaStatus::Invalid("ConcatCuda: negative size");
  ConcatArgs a{p, ptrs, {}, 0};
  int64_t largest = 0;
  for (int i = 0; i < p.count; ++i) {
    if (p.axis_sizes[i] < 0) return CudaStatus::Invalid("ConcatCuda: negative axis size");
    a.offsets[i] = a.out_row;
    a.out_row += p.axis_sizes[i] * p.inner;
    largest = std::max(largest, p.outer * p.axis_sizes[i] * p.inner);
  }
  if (largest == 0) return CudaStatus::Ok();
  const int64_t blocks = (largest + 255) / 256;
  const dim3 grid(static_cast<unsigned>(blocks < 65536 ? blocks : 65536), static_cast<unsigned>(p.count));
  if (p.dtype == CudaDType::kF16) ConcatKernel<uint16_t><<<grid, 256, 0, stream>>>(a);
  else ConcatKernel<float><<<grid, 256, 0, stream>>>(a);
  return LastLaunchStatus();
}

}  // namespace facesight
