// Device helpers the GEMM and conv kernels share: fp32 / fp16 loads and stores through float, and
// the fused activations (the CPU kernels' Activation, applied at the store).
#pragma once
#include "common/cuda_util.h"
#include "ops/kernels.h"

#if !defined(__CUDACC_EMU__)
#include <cuda_fp16.h>
#endif

namespace facesight {
namespace cuda_detail {

__device__ __forceinline__ float ToF(float v) { return v; }
__device__ __forceinline__ void FromF(float v, float* out) { *out = v; }
#if !defined(__CUDACC_EMU__)
__device__ __forceinline__ float ToF(__half v) { return __half2float(v); }
__device__ __forceinline__ void FromF(float v, __half* out) { *out = __float2half_rn(v); }
#endif

__device__ __forceinline__ float Activate(float v, const Activation& act, float slope) {
  switch (act.kind) {
    case ActKind::Relu: return v > 0.f ? v : 0.f;
    case ActKind::Leaky: return v >= 0.f ? v : v * act.alpha;
    case ActKind::Clip: return StdMin(StdMax(v, act.alpha), act.beta);
    case ActKind::PRelu: return v >= 0.f ? v : v * slope;
    default: return v;
  }
}

}  // namespace cuda_detail
}  // namespace facesight
