// CUDA element-wise kernels: grid-stride loops, one output element per thread step.
#include "ops/elementwise_cuda.h"

#if !defined(__CUDACC_EMU__)
#include <cuda_fp16.h>
#endif

namespace facesight {
namespace {

using namespace cuda_detail;

__device__ __forceinline__ float Apply(BinaryCudaKind kind, float a, float b) {
  switch (kind) {
    case BinaryCudaKind::kAdd: return Add(a, b);
    case BinaryCudaKind::kSub: return Sub(a, b);
    case BinaryCudaKind::kMul: return Mul(a, b);
    case BinaryCudaKind::kDiv: return __fdiv_rn(a, b);
    case BinaryCudaKind::kPow: return static_cast<float>(pow(static_cast<double>(a), static_cast<double>(b)));
    case BinaryCudaKind::kMax: return a > b ? a : b;
    case BinaryCudaKind::kMin: return a < b ? a : b;
    case BinaryCudaKind::kPRelu: return a >= 0.f ? a : Mul(a, b);
  }
  return a;
}

__global__ void BinaryKernel(const BinaryCudaParams p, const float* a, const float* b, float* y, int64_t total) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (p.same_shape) {
      y[i] = Apply(p.kind, a[i], b[i]);
      continue;
    }
    int64_t ia = 0, ib = 0, rest = i;
    for (int k = p.rank - 1; k >= 0; --k) {
      const int64_t idx = rest % p.dims[k];
      rest /= p.dims[k];
      ia += idx * p.a_strides[k];
      ib += idx * p.b_strides[k];
    }
    y[i] = Apply(p.kind, a[ia], b[ib]);
  }
}

__global__ void UnaryKernel(const UnaryCudaParams p, const float* x, float* y) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    float r = v;
    switch (p.kind) {
      case UnaryCudaKind::kRelu: r = v > 0.f ? v : 0.f; break;
      case UnaryCudaKind::kLeakyRelu: r = v >= 0.f ? v : Mul(v, p.alpha); break;
      case UnaryCudaKind::kSigmoid: r = __fdiv_rn(1.f, Add(1.f, ExpF(-v))); break;
      case UnaryCudaKind::kClip: r = StdMin(StdMax(v, p.lo), p.hi); break;
      case UnaryCudaKind::kTanh: r = static_cast<float>(tanh(static_cast<double>(v))); break;
      case UnaryCudaKind::kExp: r = ExpF(v); break;
      case UnaryCudaKind::kHardSigmoid: r = StdMin(1.f, StdMax(0.f, Add(Mul(p.alpha, v), p.beta))); break;
      case UnaryCudaKind::kHardSwish: r = Mul(v, StdMin(1.f, StdMax(0.f, Add(__fdiv_rn(v, 6.f), 0.5f)))); break;
    }
    y[i] = r;
  }
}

#if !defined(__CUDACC_EMU__)
__global__ void CastKernel(int mode, int64_t n, const void* x, void* y) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (mode == 0) static_cast<__half*>(y)[i] = __float2half_rn(static_cast<const float*>(x)[i]);
    else static_cast<float*>(y)[i] = __half2float(static_cast<const __half*>(x)[i]);
  }
}
#endif

unsigned Blocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < (1 << 20) ? b : (1 << 20));
}

}  // namespace

size_t BinaryCudaWorkspaceSize(const BinaryCudaParams&) { return 0; }
size_t UnaryCudaWorkspaceSize(const UnaryCudaParams&) { return 0; }

CudaStatus BinaryCuda(const BinaryCudaParams& p, const float* a, const float* b, float* y, void*, size_t,
                      cudaStream_t stream) {
  if (p.rank < 0 || p.rank > kBinaryCudaMaxRank) return CudaStatus::Invalid("BinaryCuda: rank out of range");
  int64_t total = 1;
  for (int k = 0; k < p.rank; ++k) {
    if (p.dims[k] < 0) return CudaStatus::Invalid("BinaryCuda: negative dimension");
    total *= p.dims[k];
  }
  if (total == 0) return CudaStatus::Ok();
  BinaryKernel<<<Blocks(total), 256, 0, stream>>>(p, a, b, y, total);
  return LastLaunchStatus();
}

CudaStatus UnaryCuda(const UnaryCudaParams& p, const float* x, float* y, void*, size_t, cudaStream_t stream) {
  if (p.n < 0) return CudaStatus::Invalid("UnaryCuda: negative size");
  if (p.n == 0) return CudaStatus::Ok();
  UnaryKernel<<<Blocks(p.n), 256, 0, stream>>>(p, x, y);
  return LastLaunchStatus();
}

CudaStatus CastCuda(CudaDType from, CudaDType to, int64_t n, const void* x, void* y, cudaStream_t stream) {
  if (n < 0) return CudaStatus::Invalid("CastCuda: negative size");
  if (n == 0) return CudaStatus::Ok();
  if (from == to) return FromCuda(cudaMemcpyAsync(y, x, n * (from == CudaDType::kF16 ? 2 : 4), cudaMemcpyDeviceToDevice, stream));
#if defined(__CUDACC_EMU__)
  return CudaStatus::Invalid("fp16 is not available in the emulator");
#else
  CastKernel<<<Blocks(n), 256, 0, stream>>>(from == CudaDType::kF32 ? 0 : 1, n, x, y);
  return LastLaunchStatus();
#endif
}

}  // namespace facesight
