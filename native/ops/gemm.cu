// The tiled GEMM shared by GemmCuda and the GEMM-shaped convolutions (pointwise, implicit im2col).
// One problem description (TileProblem) with three ways to read B and write Y (Mode):
//   kGemm      B(k, col) and Y(r, col) through element strides (transposes and batches are strides);
//   kPointwise B(k, col) = x[n][g·cin_g + k][p], col = n·HW + p; Y(r, col) = y[n][g·cout_g + r][p];
//   kImplicit  B(k, col) = x[n][g·cin_g + c][oh·sh − pt + kh·dh][ow·sw − pl + kw·dw] (0 outside),
//              k = (c, kh, kw) in the weight's order, col = (n, oh, ow).
// A(r, k) is always strided (conv weights: w[g·cout_g + r][k]). grid.z runs over groups / batch items.
// Each block stages a BK-deep slice of A and B in shared memory (converted to the math type), the next
// slice already in registers (one buffer, loads overlap the math), and applies the epilogue (alpha,
// bias, beta·C, activation) at the store.
#include "ops/activation_cuda.cuh"
#include "ops/conv_cuda.h"
#include "ops/gemm_cuda.h"

#if !defined(__CUDACC_EMU__)
#include <cuda_fp16.h>
#include <mma.h>
#endif

namespace facesight {
namespace {

using namespace cuda_detail;

enum Mode { kGemm = 0, kPointwise = 1, kImplicit = 2 };

struct TileProblem {
  int64_t rows, cols, K, zs;  // per z: rows × cols, depth K; zs = grid.z items
  const void* a;
  int64_t a_z, a_r, a_k;
  const void* b;  // kGemm: strides below; conv modes: x
  int64_t b_z, b_k, b_c;
  void* y;
  int64_t y_z, y_r, y_c;
  // conv geometry (conv modes)
  int64_t C, H, W, OH, OW, KH, KW, sh, sw, dh, dw, pt, pl, cin_g, cout_g, M;
  // epilogue
  float alpha, beta;
  const float* row_bias;  // [z · row_bias_z + r]
  int64_t row_bias_z;
  const float* col_bias;  // [z · col_bias_z + col]
  int64_t col_bias_z;
  const float* full_c;    // [z · c_z + r · c_r + col · c_c]
  int64_t c_z, c_r, c_c;
  const float* row_slope;  // PRelu: [z · row_bias_z + r] (conv only)
  Activation act;
};

// One B column as a loading thread sees it: where its pixel's data start and (implicit) its window.
struct ColRef {
  int64_t base;  // kGemm: element offset of B(0, col); conv: offset of x[n][g·cin_g][0][0] (+ p for pointwise)
  int32_t ih0, iw0;
  bool valid;
};

template <int MODE>
__device__ __forceinline__ ColRef DecodeCol(const TileProblem& p, int64_t z, int64_t col) {
  ColRef c{0, 0, 0, col < p.cols};
  if (!c.valid) return c;
  if (MODE == kGemm) {
    c.base = z * p.b_z + col * p.b_c;
  } else {
    const int64_t ohw = p.OH * p.OW;
    const int64_t n = col / ohw, q = col % ohw;
    c.base = (n * p.C + z * p.cin_g) * p.H * p.W;
    if (MODE == kPointwise) {
      c.base += q;
    } else {
      c.ih0 = static_cast<int32_t>((q / p.OW) * p.sh - p.pt);
      c.iw0 = static_cast<int32_t>((q % p.OW) * p.sw - p.pl);
    }
  }
  return c;
}

template <int MODE, typename T>
__device__ __forceinline__ float LoadB(const TileProblem& p, const ColRef& c, int64_t k) {
  if (!c.valid || k >= p.K) return 0.f;
  const T* b = static_cast<const T*>(p.b);
  if (MODE == kGemm) return ToF(b[c.base + k * p.b_k]);
  if (MODE == kPointwise) return ToF(b[c.base + k * p.H * p.W]);
  const int64_t taps = p.KH * p.KW;
  const int64_t ch = k / taps, t = k % taps;
  const int64_t ih = c.ih0 + (t / p.KW) * p.dh, iw = c.iw0 + (t % p.KW) * p.dw;
  if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) return 0.f;
  return ToF(b[c.base + (ch * p.H + ih) * p.W + iw]);
}

template <typename T>
__device__ __forceinline__ float LoadA(const TileProblem& p, int64_t z, int64_t r, int64_t k) {
  if (r >= p.rows || k >= p.K) return 0.f;
  return ToF(static_cast<const T*>(p.a)[z * p.a_z + r * p.a_r + k * p.a_k]);
}

template <int MODE, typename T>
__device__ __forceinline__ void StoreY(const TileProblem& p, int64_t z, int64_t r, int64_t col, float acc) {
  if (r >= p.rows || col >= p.cols) return;
  float v = acc * p.alpha;
  if (p.row_bias) v += p.beta * p.row_bias[z * p.row_bias_z + r];
  if (p.col_bias) v += p.beta * p.col_bias[z * p.col_bias_z + col];
  if (p.full_c) v += p.beta * p.full_c[z * p.c_z + r * p.c_r + col * p.c_c];
  const float slope = p.act.kind == ActKind::PRelu ? p.row_slope[z * p.row_bias_z + r] : 0.f;
  v = Activate(v, p.act, slope);
  T* y = static_cast<T*>(p.y);
  if (MODE == kGemm) {
    FromF(v, y + z * p.y_z + r * p.y_r + col * p.y_c);
  } else {
    const int64_t ohw = p.OH * p.OW;
    const int64_t n = col / ohw, q = col % ohw;
    FromF(v, y + (n * p.M + z * p.cout_g + r) * ohw + q);
  }
}

constexpr int kThreads = 256;

// ---- fp32 SIMT tiles: BM×128 per block, BK = 16; thread (ty, tx) of a 16×16 grid owns rows ty + 16i
// and columns tx + 16j (so a warp's stores are 16 consecutive columns of two rows).
template <int BM, int MODE, typename T>
__global__ void __launch_bounds__(kThreads) SimtGemmKernel(const TileProblem p) {
  constexpr int BN = 128, BK = 16, TM = BM / 16, TN = BN / 16;
  constexpr int A_PER = BM * BK / kThreads, B_PER = BK * BN / kThreads;
  constexpr int A_ROW_STEP = kThreads / BK, B_K_STEP = kThreads / BN;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * BM, col0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int a_k = tid % BK, a_r = tid / BK;
  const int b_c = tid % BN, b_k = tid / BN;
  for (int64_t z = blockIdx.z; z < p.zs; z += gridDim.z) {
    const ColRef cref = DecodeCol<MODE>(p, z, col0 + b_c);
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;
    float ra[A_PER], rb[B_PER];
#pragma unroll
    for (int i = 0; i < A_PER; ++i) ra[i] = LoadA<T>(p, z, row0 + a_r + i * A_ROW_STEP, a_k);
#pragma unroll
    for (int i = 0; i < B_PER; ++i) rb[i] = LoadB<MODE, T>(p, cref, b_k + i * B_K_STEP);
    for (int64_t k0 = 0; k0 < p.K; k0 += BK) {
      __syncthreads();
#pragma unroll
      for (int i = 0; i < A_PER; ++i) As[a_k][a_r + i * A_ROW_STEP] = ra[i];
#pragma unroll
      for (int i = 0; i < B_PER; ++i) Bs[b_k + i * B_K_STEP][b_c] = rb[i];
      __syncthreads();
      if (k0 + BK < p.K) {
#pragma unroll
        for (int i = 0; i < A_PER; ++i) ra[i] = LoadA<T>(p, z, row0 + a_r + i * A_ROW_STEP, k0 + BK + a_k);
#pragma unroll
        for (int i = 0; i < B_PER; ++i) rb[i] = LoadB<MODE, T>(p, cref, k0 + BK + b_k + i * B_K_STEP);
      }
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        float av[TM], bv[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
        for (int j = 0; j < TN; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += av[i] * bv[j];
      }
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) StoreY<MODE, T>(p, z, row0 + ty + 16 * i, col0 + tx + 16 * j, acc[i][j]);
  }
}

#if !defined(__CUDACC_EMU__)
// ---- Tensor-core tiles: BM×128 per block, BK = 32, 8 warps as 2 (rows) × 4 (columns), each warp
// (BM/2)×32 as WMMA 16×16×16 fragments (fp16 in, fp32 accumulators). The epilogue goes through a
// per-warp 16×16 fp32 patch in shared memory.
template <int BM, int MODE, typename T>
__global__ void __launch_bounds__(kThreads) WmmaGemmKernel(const TileProblem p) {
  using namespace nvcuda;
  constexpr int BN = 128, BK = 32, WM = BM / 2, WN = 32, FM = WM / 16, FN = WN / 16;
  constexpr int A_PER = BM * BK / kThreads, B_PER = BK * BN / kThreads;
  constexpr int A_ROW_STEP = kThreads / BK, B_K_STEP = kThreads / BN;
  constexpr int LDA = BK + 8, LDB = BN + 8;
  __shared__ __align__(32) __half As[BM * LDA];
  __shared__ __align__(32) __half Bs[BK * LDB];
  __shared__ __align__(32) float Cs[kThreads / 32][16 * 16];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / 4, wn = warp % 4;
  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * BM, col0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int a_k = tid % BK, a_r = tid / BK;
  const int b_c = tid % BN, b_k = tid / BN;
  for (int64_t z = blockIdx.z; z < p.zs; z += gridDim.z) {
    const ColRef cref = DecodeCol<MODE>(p, z, col0 + b_c);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);
    __half ra[A_PER], rb[B_PER];
#pragma unroll
    for (int i = 0; i < A_PER; ++i) ra[i] = __float2half_rn(LoadA<T>(p, z, row0 + a_r + i * A_ROW_STEP, a_k));
#pragma unroll
    for (int i = 0; i < B_PER; ++i) rb[i] = __float2half_rn(LoadB<MODE, T>(p, cref, b_k + i * B_K_STEP));
    for (int64_t k0 = 0; k0 < p.K; k0 += BK) {
      __syncthreads();
#pragma unroll
      for (int i = 0; i < A_PER; ++i) As[(a_r + i * A_ROW_STEP) * LDA + a_k] = ra[i];
#pragma unroll
      for (int i = 0; i < B_PER; ++i) Bs[(b_k + i * B_K_STEP) * LDB + b_c] = rb[i];
      __syncthreads();
      if (k0 + BK < p.K) {
#pragma unroll
        for (int i = 0; i < A_PER; ++i)
          ra[i] = __float2half_rn(LoadA<T>(p, z, row0 + a_r + i * A_ROW_STEP, k0 + BK + a_k));
#pragma unroll
        for (int i = 0; i < B_PER; ++i) rb[i] = __float2half_rn(LoadB<MODE, T>(p, cref, k0 + BK + b_k + i * B_K_STEP));
      }
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa[FM];
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb[FN];
#pragma unroll
        for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(fa[i], As + (wm * WM + i * 16) * LDA + kk, LDA);
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(fb[j], Bs + kk * LDB + wn * WN + j * 16, LDB);
#pragma unroll
        for (int i = 0; i < FM; ++i)
#pragma unroll
          for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      }
    }
    float* patch = Cs[warp];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        wmma::store_matrix_sync(patch, acc[i][j], 16, wmma::mem_row_major);
        __syncwarp();
        const int64_t r0 = row0 + wm * WM + i * 16, c0 = col0 + wn * WN + j * 16;
        for (int e = lane; e < 256; e += 32) StoreY<MODE, T>(p, z, r0 + e / 16, c0 + e % 16, patch[e]);
        __syncwarp();
      }
  }
}
#endif

template <int MODE, typename T>
CudaStatus LaunchTiles(const TileProblem& p, bool tensor_cores, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0 || p.zs <= 0) return CudaStatus::Ok();
  const bool small = p.rows <= 64;
  const int bm = small ? 64 : 128;
  const int64_t col_tiles = (p.cols + 127) / 128, row_tiles = (p.rows + bm - 1) / bm;
  if (col_tiles > 0x7fffffff || row_tiles > 65535) return CudaStatus::Invalid("GEMM too large for one launch");
  const dim3 grid(static_cast<unsigned>(col_tiles), static_cast<unsigned>(row_tiles),
                  static_cast<unsigned>(p.zs < 65535 ? p.zs : 65535));
  if (tensor_cores) {
#if defined(__CUDACC_EMU__)
    return CudaStatus::Invalid("tensor cores are not available in the emulator");
#else
    if (small) WmmaGemmKernel<64, MODE, T><<<grid, kThreads, 0, stream>>>(p);
    else WmmaGemmKernel<128, MODE, T><<<grid, kThreads, 0, stream>>>(p);
#endif
  } else {
    if (small) SimtGemmKernel<64, MODE, T><<<grid, kThreads, 0, stream>>>(p);
    else SimtGemmKernel<128, MODE, T><<<grid, kThreads, 0, stream>>>(p);
  }
  return LastLaunchStatus();
}

template <int MODE>
CudaStatus LaunchTyped(const TileProblem& p, CudaDType dtype, bool tensor_cores, cudaStream_t stream) {
#if defined(__CUDACC_EMU__)
  if (dtype != CudaDType::kF32) return CudaStatus::Invalid("fp16 is not available in the emulator");
  return LaunchTiles<MODE, float>(p, tensor_cores, stream);
#else
  return dtype == CudaDType::kF16 ? LaunchTiles<MODE, __half>(p, tensor_cores, stream)
                                  : LaunchTiles<MODE, float>(p, tensor_cores, stream);
#endif
}

bool UseTensorCores(CudaDType dtype, CudaMath math) {
  return math == CudaMath::kTensorCore || (math == CudaMath::kAuto && dtype == CudaDType::kF16);
}

TileProblem Blank() {
  TileProblem p{};
  p.alpha = 1.f;
  p.beta = 1.f;
  p.zs = 1;
  return p;
}

}  // namespace

size_t GemmCudaWorkspaceSize(const GemmCudaParams&) { return 0; }

CudaStatus GemmCuda(const GemmCudaParams& q, const GemmCudaPtrs& ptrs, void*, size_t, cudaStream_t stream) {
  if (q.M < 0 || q.N < 0 || q.K < 0 || q.batch < 0) return CudaStatus::Invalid("GemmCuda: negative size");
  if (q.act.kind == ActKind::PRelu) return CudaStatus::Invalid("GemmCuda: PRelu is not a Gemm epilogue");
  if (q.bias != GemmCudaParams::Bias::kNone && !ptrs.c) return CudaStatus::Invalid("GemmCuda: bias requested but c is null");
  if (q.M == 0 || q.N == 0 || q.batch == 0) return CudaStatus::Ok();
  // Element strides of A'(m, k), B'(k, n), Y(m, n).
  const int64_t am = q.trans_a ? 1 : q.K, ak = q.trans_a ? q.M : 1;
  const int64_t bk = q.trans_b ? 1 : q.N, bn = q.trans_b ? q.K : 1;
  TileProblem p = Blank();
  p.K = q.K;
  p.zs = q.batch;
  p.alpha = q.alpha;
  p.beta = q.beta;
  p.act = q.act;
  p.y = ptrs.y;
  // Few rows (an FC layer at a small batch) waste most of a BM-row tile: compute Yᵀ = B'ᵀ·A'ᵀ instead,
  // the N weight columns as tile rows and the batch as tile columns. Strides make it free.
  const bool swap = q.M < 32 && q.N >= 64;
  const float* m_vec = q.bias == GemmCudaParams::Bias::kRow ? ptrs.c : nullptr;  // indexed by m
  const float* n_vec = q.bias == GemmCudaParams::Bias::kCol ? ptrs.c : nullptr;  // indexed by n
  if (q.bias == GemmCudaParams::Bias::kFull) p.full_c = ptrs.c, p.c_z = q.batch_stride_c;
  if (!swap) {
    p.rows = q.M, p.cols = q.N;
    p.a = ptrs.a, p.a_z = q.batch_stride_a, p.a_r = am, p.a_k = ak;
    p.b = ptrs.b, p.b_z = q.batch_stride_b, p.b_k = bk, p.b_c = bn;
    p.y_z = q.batch_stride_y, p.y_r = q.N, p.y_c = 1;
    p.row_bias = m_vec, p.col_bias = n_vec;
    p.c_r = q.N, p.c_c = 1;
  } else {
    p.rows = q.N, p.cols = q.M;
    p.a = ptrs.b, p.a_z = q.batch_stride_b, p.a_r = bn, p.a_k = bk;
    p.b = ptrs.a, p.b_z = q.batch_stride_a, p.b_k = ak, p.b_c = am;
    p.y_z = q.batch_stride_y, p.y_r = 1, p.y_c = q.N;
    p.row_bias = n_vec, p.col_bias = m_vec;
    p.c_r = 1, p.c_c = q.N;
  }
  p.row_bias_z = p.col_bias_z = q.batch_stride_c;
  return LaunchTyped<kGemm>(p, q.dtype, UseTensorCores(q.dtype, q.math), stream);
}

namespace cuda_internal {

CudaStatus ConvGemmCuda(const ConvCudaParams& q, const ConvCudaPtrs& ptrs, bool pointwise, cudaStream_t stream) {
  const int64_t cin_g = q.C / q.group, cout_g = q.M / q.group;
  TileProblem p = Blank();
  p.rows = cout_g;
  p.cols = q.N * q.OH * q.OW;
  p.K = cin_g * q.KH * q.KW;
  p.zs = q.group;
  p.a = ptrs.w, p.a_z = cout_g * p.K, p.a_r = p.K, p.a_k = 1;
  p.b = ptrs.x;
  p.y = ptrs.y;
  p.C = q.C, p.H = q.H, p.W = q.W, p.OH = q.OH, p.OW = q.OW, p.KH = q.KH, p.KW = q.KW;
  p.sh = q.stride_h, p.sw = q.stride_w, p.dh = q.dilation_h, p.dw = q.dilation_w, p.pt = q.pad_top, p.pl = q.pad_left;
  p.cin_g = cin_g, p.cout_g = cout_g, p.M = q.M;
  p.row_bias = ptrs.bias, p.row_bias_z = cout_g;
  p.row_slope = ptrs.slope;
  p.act = q.act;
  const bool tc = UseTensorCores(q.dtype, q.math);
  return pointwise ? LaunchTyped<kPointwise>(p, q.dtype, tc, stream) : LaunchTyped<kImplicit>(p, q.dtype, tc, stream);
}

}  // namespace cuda_internal
}  // namespace facesight
