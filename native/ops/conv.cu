// CUDA Conv2d: path choice, the depthwise 3×3 kernel and the direct kernel; the GEMM-shaped paths
// (pointwise, implicit im2col) are in gemm.cu on the shared tiles.
#include "ops/activation_cuda.cuh"
#include "ops/conv_cuda.h"

#if !defined(__CUDACC_EMU__)
#include <cuda_fp16.h>
#endif

namespace facesight {
namespace {

using namespace cuda_detail;

struct ConvArgs {
  ConvCudaParams p;
  const void* x;
  const void* w;
  const float* bias;
  const float* slope;
  void* y;
};

// ---- Depthwise 3×3: a block computes 32×8 outputs of one (image, channel) plane from a shared tile of
// the (zero-padded) input: (8−1)·S + 3 rows × (32−1)·S + 3 columns.
constexpr int kDwX = 32, kDwY = 8;

template <int S, typename T>
__global__ void __launch_bounds__(kDwX* kDwY) Depthwise3x3Kernel(const ConvArgs a) {
  constexpr int TH = (kDwY - 1) * S + 3, TW = (kDwX - 1) * S + 3;
  __shared__ float tile[TH][TW + 1];
  const ConvCudaParams& p = a.p;
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w);
  T* y = static_cast<T*>(a.y);
  const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * kDwX + tx;
  const int64_t oh = static_cast<int64_t>(blockIdx.y) * kDwY + ty, ow = static_cast<int64_t>(blockIdx.x) * kDwX + tx;
  const int64_t ih0 = static_cast<int64_t>(blockIdx.y) * kDwY * S - p.pad_top;
  const int64_t iw0 = static_cast<int64_t>(blockIdx.x) * kDwX * S - p.pad_left;
  const int64_t planes = p.N * p.C;
  for (int64_t plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const int64_t c = plane % p.C;
    const T* xp = x + plane * p.H * p.W;
    __syncthreads();
    for (int i = tid; i < TH * TW; i += kDwX * kDwY) {
      const int r = i / TW, q = i % TW;
      const int64_t ih = ih0 + r, iw = iw0 + q;
      tile[r][q] = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W ? ToF(xp[ih * p.W + iw]) : 0.f;
    }
    __syncthreads();
    if (oh >= p.OH || ow >= p.OW) continue;
    float k[9];
    for (int t = 0; t < 9; ++t) k[t] = ToF(w[c * 9 + t]);
    float acc = 0.f;
#pragma unroll
    for (int kh = 0; kh < 3; ++kh)
#pragma unroll
      for (int kw = 0; kw < 3; ++kw) acc += tile[ty * S + kh][tx * S + kw] * k[kh * 3 + kw];
    if (a.bias) acc += a.bias[c];
    const float slope = p.act.kind == ActKind::PRelu ? a.slope[c] : 0.f;
    FromF(Activate(acc, p.act, slope), y + (plane * p.OH + oh) * p.OW + ow);
  }
}

// ---- Direct convolution: one thread per output, any geometry (few output channels per group).
template <typename T>
__global__ void DirectConvKernel(const ConvArgs a) {
  const ConvCudaParams& p = a.p;
  const T* x = static_cast<const T*>(a.x);
  const T* w = static_cast<const T*>(a.w);
  T* y = static_cast<T*>(a.y);
  const int64_t total = p.N * p.M * p.OH * p.OW;
  const int64_t cin_g = p.C / p.group, cout_g = p.M / p.group;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, m = (i / (p.OW * p.OH)) % p.M, n = i / (p.OW * p.OH * p.M);
    const int64_t g = m / cout_g;
    const int64_t ih0 = oh * p.stride_h - p.pad_top, iw0 = ow * p.stride_w - p.pad_left;
    float acc = 0.f;
    for (int64_t c = 0; c < cin_g; ++c) {
      const T* xp = x + ((n * p.C + g * cin_g + c) * p.H) * p.W;
      const T* wp = w + (m * cin_g + c) * p.KH * p.KW;
      for (int64_t kh = 0; kh < p.KH; ++kh) {
        const int64_t ih = ih0 + kh * p.dilation_h;
        if (ih < 0 || ih >= p.H) continue;
        for (int64_t kw = 0; kw < p.KW; ++kw) {
          const int64_t iw = iw0 + kw * p.dilation_w;
          if (iw < 0 || iw >= p.W) continue;
          acc += ToF(xp[ih * p.W + iw]) * ToF(wp[kh * p.KW + kw]);
        }
      }
    }
    if (a.bias) acc += a.bias[m];
    const float slope = p.act.kind == ActKind::PRelu ? a.slope[m] : 0.f;
    FromF(Activate(acc, p.act, slope), y + i);
  }
}

template <typename T>
CudaStatus LaunchDirectTyped(const ConvArgs& a, ConvCudaPath path, cudaStream_t stream) {
  const ConvCudaParams& p = a.p;
  if (path == ConvCudaPath::kDepthwise3x3) {
    const dim3 block(kDwX, kDwY);
    const int64_t planes = p.N * p.C;
    const dim3 grid(GridFor(p.OW, kDwX), GridFor(p.OH, kDwY), static_cast<unsigned>(planes < 65535 ? planes : 65535));
    if (p.stride_h == 1) Depthwise3x3Kernel<1, T><<<grid, block, 0, stream>>>(a);
    else Depthwise3x3Kernel<2, T><<<grid, block, 0, stream>>>(a);
  } else {
    const int64_t total = p.N * p.M * p.OH * p.OW;
    const int64_t blocks = (total + 255) / 256;
    DirectConvKernel<T><<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), 256, 0, stream>>>(a);
  }
  return LastLaunchStatus();
}

}  // namespace

ConvCudaPath ConvCudaPathFor(const ConvCudaParams& p) {
  if (p.group == p.C && p.M == p.C && p.KH == 3 && p.KW == 3 && p.stride_h == p.stride_w && p.stride_h <= 2 &&
      p.dilation_h == 1 && p.dilation_w == 1)
    return ConvCudaPath::kDepthwise3x3;
  if (p.M / p.group < 8) return ConvCudaPath::kDirect;
  if (p.KH == 1 && p.KW == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top == 0 && p.pad_left == 0 &&
      p.OH == p.H && p.OW == p.W)
    return ConvCudaPath::kPointwise;
  return ConvCudaPath::kImplicitGemm;
}

const char* ConvCudaPathName(ConvCudaPath path) {
  switch (path) {
    case ConvCudaPath::kDepthwise3x3: return "depthwise3x3";
    case ConvCudaPath::kPointwise: return "pointwise";
    case ConvCudaPath::kImplicitGemm: return "implicit-gemm";
    default: return "direct";
  }
}

bool ConvCudaUsesTensorCores(const ConvCudaParams& p) {
  const ConvCudaPath path = ConvCudaPathFor(p);
  if (path != ConvCudaPath::kPointwise && path != ConvCudaPath::kImplicitGemm) return false;
  return p.math == CudaMath::kTensorCore || (p.math == CudaMath::kAuto && p.dtype == CudaDType::kF16);
}

size_t ConvCudaWorkspaceSize(const ConvCudaParams&) { return 0; }

CudaStatus ConvCuda(const ConvCudaParams& p, const ConvCudaPtrs& ptrs, void*, size_t, cudaStream_t stream) {
  if (p.N < 0 || p.C <= 0 || p.H <= 0 || p.W <= 0 || p.M <= 0 || p.KH <= 0 || p.KW <= 0 || p.OH < 0 || p.OW < 0)
    return CudaStatus::Invalid("ConvCuda: sizes must be positive");
  if (p.group <= 0 || p.C % p.group || p.M % p.group) return CudaStatus::Invalid("ConvCuda: group must divide C and M");
  if (p.stride_h <= 0 || p.stride_w <= 0 || p.dilation_h <= 0 || p.dilation_w <= 0 || p.pad_top < 0 || p.pad_left < 0)
    return CudaStatus::Invalid("ConvCuda: strides and dilations must be ≥ 1, pads ≥ 0");
  if (p.act.kind == ActKind::PRelu && !ptrs.slope) return CudaStatus::Invalid("ConvCuda: PRelu needs slopes");
  if (p.N == 0 || p.OH == 0 || p.OW == 0) return CudaStatus::Ok();
  const ConvCudaPath path = ConvCudaPathFor(p);
  if (path == ConvCudaPath::kPointwise || path == ConvCudaPath::kImplicitGemm)
    return cuda_internal::ConvGemmCuda(p, ptrs, path == ConvCudaPath::kPointwise, stream);
  const ConvArgs a{p, ptrs.x, ptrs.w, ptrs.bias, ptrs.slope, ptrs.y};
#if defined(__CUDACC_EMU__)
  if (p.dtype != CudaDType::kF32) return CudaStatus::Invalid("fp16 is not available in the emulator");
  return LaunchDirectTyped<float>(a, path, stream);
#else
  return p.dtype == CudaDType::kF16 ? LaunchDirectTyped<__half>(a, path, stream) : LaunchDirectTyped<float>(a, path, stream);
#endif
}

}  // namespace facesight
