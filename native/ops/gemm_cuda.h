// CUDA GEMM / MatMul (the FC layers) and the tile machinery shared with the convolutions (conv.cu).
// No cuBLAS: fp32 SIMT tiles (128×128 or 64×128 per block, 8×8 / 4×8 per thread) and, for fp16 data,
// tensor-core tiles (WMMA m16n16k16, fp16 inputs, fp32 accumulation, sm_70+; built for sm_90) with the
// SIMT tiles as a run-time fallback (CudaMath::kSimt) that reads the same fp16 data and accumulates in
// fp32. Y = act(alpha · op(A) · op(B) + beta · C), batched over stride-described batch items.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "ops/kernels.h"  // Activation / ActKind: the same fused activations as the CPU kernels

namespace facesight {

// Element type of the tensors a kernel reads and writes (bias / slope / C are always fp32).
enum class CudaDType : int32_t { kF32 = 0, kF16 = 1 };
// Which tiles run: kAuto = tensor cores for fp16 data, SIMT for fp32; kSimt forces the fp32-FMA tiles
// (the fallback, for any dtype); kTensorCore forces tensor cores (fp32 data are rounded to fp16 when
// they are staged in shared memory; accumulation stays fp32).
enum class CudaMath : int32_t { kAuto = 0, kSimt = 1, kTensorCore = 2 };

// Y[b] (M×N, row-major, ld N) = act(alpha · A'[b] · B'[b] + beta · C)   for b < batch.
// A' = A (M×K, ld K) or Aᵀ (A stored K×M, ld M) when trans_a; B' = B (K×N, ld N) or Bᵀ (stored N×K)
// when trans_b — the attributes of ONNX Gemm (MatMul: no transposes, alpha 1, no C).
struct GemmCudaParams {
  int64_t M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  float alpha = 1.f, beta = 1.f;
  // C, fp32: none, one value per row (M), per column (N: the usual FC bias), or a full M×N matrix.
  enum class Bias : int32_t { kNone, kRow, kCol, kFull } bias = Bias::kNone;
  // Batched MatMul: batch items; element strides between consecutive items of A, B, C, Y (0 = the same
  // matrix for every item: NumPy broadcasting of the batch axes reduces to this when only one side has
  // batch axes; other broadcasts are one launch per broadcast slice).
  int64_t batch = 1;
  int64_t batch_stride_a = 0, batch_stride_b = 0, batch_stride_c = 0, batch_stride_y = 0;
  Activation act;  // None / Relu / Leaky / Clip (PRelu is not a Gemm epilogue here)
  CudaDType dtype = CudaDType::kF32;  // A, B, Y
  CudaMath math = CudaMath::kAuto;
};

struct GemmCudaPtrs {
  const void* a = nullptr;
  const void* b = nullptr;
  const float* c = nullptr;  // per params.bias; null when kNone
  void* y = nullptr;
};

// No scratch: 0. Kept for the convention.
size_t GemmCudaWorkspaceSize(const GemmCudaParams& params);
// Device pointers; enqueues on `stream`, never synchronises.
CudaStatus GemmCuda(const GemmCudaParams& params, const GemmCudaPtrs& ptrs, void* workspace, size_t workspace_bytes,
                    cudaStream_t stream);

}  // namespace facesight
