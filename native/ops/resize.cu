// CUDA Resize: one thread per output pixel; each computes its row and column taps as resize.cpp does.
#include "ops/resize_cuda.h"

namespace facesight {
namespace {

using namespace cuda_detail;

__device__ double SourceCoord(const ResizeCudaParams& p, int64_t o, int64_t in_size, int64_t out_size, float scale) {
  const float x = static_cast<float>(o);
  switch (p.coord) {
    case ResizeCoordCuda::kHalfPixel: return Sub(__fdiv_rn(Add(x, 0.5f), scale), 0.5f);
    case ResizeCoordCuda::kPytorchHalfPixel: return out_size > 1 ? Sub(__fdiv_rn(Add(x, 0.5f), scale), 0.5f) : 0.f;
    case ResizeCoordCuda::kAlignCorners:
      return out_size > 1 ? __fdiv_rn(Mul(x, static_cast<float>(in_size - 1)), static_cast<float>(out_size - 1)) : 0.f;
    case ResizeCoordCuda::kHalfPixelSymmetric: {
      const float adjustment = __fdiv_rn(static_cast<float>(out_size), Mul(scale, static_cast<float>(in_size)));
      const float center = __fdiv_rn(static_cast<float>(in_size), 2.f);
      const float offset = Mul(center, Sub(1.f, adjustment));
      return Sub(Add(offset, __fdiv_rn(Add(x, 0.5f), scale)), 0.5f);
    }
    default: return __fdiv_rn(x, scale);
  }
}

__device__ int64_t Round(const ResizeCudaParams& p, double v) {
  switch (p.rounding) {
    case ResizeRoundingCuda::kFloor: return static_cast<int64_t>(floor(v));
    case ResizeRoundingCuda::kCeil: return static_cast<int64_t>(ceil(v));
    case ResizeRoundingCuda::kRoundPreferCeil: return static_cast<int64_t>(floor(AddD(v, 0.5)));
    default: return static_cast<int64_t>(ceil(SubD(v, 0.5)));
  }
}

struct Tap {
  int64_t i0, i1;
  float w1;
};

__device__ Tap MakeTap(const ResizeCudaParams& p, int64_t o, int64_t in_size, int64_t out_size, float scale) {
  double src = SourceCoord(p, o, in_size, out_size, scale);
  if (!p.linear) {
    int64_t i = Round(p, src);
    i = i < 0 ? 0 : (i > in_size - 1 ? in_size - 1 : i);
    return {i, i, 0.f};
  }
  src = fmin(fmax(src, 0.0), static_cast<double>(in_size - 1));
  const int64_t i0 = static_cast<int64_t>(floor(src));
  const int64_t i1 = i0 + 1 < in_size - 1 ? i0 + 1 : in_size - 1;
  return {i0, i1, static_cast<float>(SubD(src, static_cast<double>(i0)))};
}

__global__ void ResizeKernel(const ResizeCudaParams p, const float* x, float* y) {
  const int64_t total = p.NC * p.OH * p.OW;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % p.OW, oh = (i / p.OW) % p.OH, plane = i / (p.OW * p.OH);
    const float* xp = x + plane * p.H * p.W;
    const Tap tr = MakeTap(p, oh, p.H, p.OH, p.scale_h), tc = MakeTap(p, ow, p.W, p.OW, p.scale_w);
    const float* r0 = xp + tr.i0 * p.W;
    if (!p.linear) {
      y[i] = r0[tc.i0];
    } else {
      const float* r1 = xp + tr.i1 * p.W;
      const float top = Lerp(r0[tc.i0], r0[tc.i1], tc.w1);
      const float bottom = Lerp(r1[tc.i0], r1[tc.i1], tc.w1);
      y[i] = Lerp(top, bottom, tr.w1);
    }
  }
}

}  // namespace

size_t ResizeCudaWorkspaceSize(const ResizeCudaParams&) { return 0; }

CudaStatus ResizeCuda(const ResizeCudaParams& p, const float* x, float* y, void*, size_t, cudaStream_t stream) {
  if (p.NC < 0 || p.H <= 0 || p.W <= 0 || p.OH <= 0 || p.OW <= 0) return CudaStatus::Invalid("ResizeCuda: bad size");
  if (!(p.scale_h > 0.f) || !(p.scale_w > 0.f)) return CudaStatus::Invalid("ResizeCuda: scales must be positive");
  const int64_t total = p.NC * p.OH * p.OW;
  if (total == 0) return CudaStatus::Ok();
  const int64_t blocks = (total + 255) / 256;
  ResizeKernel<<<static_cast<unsigned>(blocks < (1 << 20) ? blocks : (1 << 20)), 256, 0, stream>>>(p, x, y);
  return LastLaunchStatus();
}

}  // namespace facesight
