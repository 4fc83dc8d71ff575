// CUDA Conv2d (NCHW in, NCHW out, the engine's layout) with the CPU op's fused epilogue: bias (BN
// folded in) and an activation (none / Relu / LeakyRelu / Clip / PRelu per output channel). Paths,
// picked from the geometry (ConvCudaPathFor tells which):
//   kDepthwise3x3  group = C = M, 3×3, stride 1 or 2 (same both axes), no dilation: one thread per
//                  output, a shared-memory tile of the input plane (32×8 outputs per block);
//   kPointwise     1×1, stride 1, no padding: a tiled GEMM per group, Y[n] = W · X[n] with the batch's
//                  pixels as GEMM columns, read in place (no packing);
//   kImplicitGemm  everything else with ≥ 8 output channels per group (3×3, 5×5, strides, pads,
//                  dilation, groups): the same GEMM tiles, B gathered from the image (implicit im2col);
//   kDirect        few output channels per group (depthwise 5×5, ...): one thread per output.
// The GEMM paths run fp32 SIMT tiles, or with fp16 data tensor cores (WMMA, fp32 accumulation) unless
// math = kSimt (the run-time fallback, fp32 FMAs on the same fp16 data). No channel-multiple constraint:
// tiles are staged element-wise with zero fill, so odd K / M / pixel counts are fine.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "ops/gemm_cuda.h"
#include "ops/kernels.h"

namespace facesight {

// Geometry as the CPU op resolves it (pool_geometry.h Window2d: auto_pad and ceil mode already applied,
// so pad_bottom / pad_right are implied by OH / OW and are not needed here).
struct ConvCudaParams {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input x: N×C×H×W
  int64_t M = 0;                       // output channels; weights M × (C/group) × KH × KW
  int64_t KH = 1, KW = 1;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t OH = 0, OW = 0;              // output y: N×M×OH×OW
  int64_t group = 1;
  Activation act;                      // PRelu reads ptrs.slope[M]
  CudaDType dtype = CudaDType::kF32;   // x, w, y (fp16: weights converted once by the caller, CastCuda)
  CudaMath math = CudaMath::kAuto;
};

struct ConvCudaPtrs {
  const void* x = nullptr;
  const void* w = nullptr;
  const float* bias = nullptr;   // [M] or null
  const float* slope = nullptr;  // [M], PRelu only
  void* y = nullptr;
};

enum class ConvCudaPath : int32_t { kDepthwise3x3, kPointwise, kImplicitGemm, kDirect };
ConvCudaPath ConvCudaPathFor(const ConvCudaParams& params);
const char* ConvCudaPathName(ConvCudaPath path);
// Whether a launch with these params runs on tensor cores.
bool ConvCudaUsesTensorCores(const ConvCudaParams& params);

// No scratch for any path: 0. Kept for the convention.
size_t ConvCudaWorkspaceSize(const ConvCudaParams& params);
// Device pointers; enqueues on `stream`, never synchronises.
CudaStatus ConvCuda(const ConvCudaParams& params, const ConvCudaPtrs& ptrs, void* workspace, size_t workspace_bytes,
                    cudaStream_t stream);

// Internal (gemm.cu): the GEMM-shaped conv paths on the shared tiles.
namespace cuda_internal {
CudaStatus ConvGemmCuda(const ConvCudaParams& params, const ConvCudaPtrs& ptrs, bool pointwise, cudaStream_t stream);
}

}  // namespace facesight
