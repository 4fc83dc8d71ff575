// Blocked single-precision GEMM over the SIMD micro-kernel: C[M×N] = A[M×K] · B[K×N] + epilogue.
// A is always pre-packed (weights at plan time, or activations per run); B is read in place from a
// row-major matrix, packed from a transposed matrix, or gathered straight from an image (implicit
// im2col for convolutions), so no im2col buffer is ever materialised.
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "ops/kernels.h"

namespace facesight {

// How to read B[k][n].
struct GemmB {
  enum class Kind { RowMajor, Transposed, Im2col } kind = Kind::RowMajor;
  const float* data = nullptr;
  int64_t ld = 0;  // RowMajor: row stride (≥ N); Transposed: B[k][n] = data[n * ld + k]
  // Im2col: data is one image [C][H][W]; k = (c, kh, kw), n = (oh, ow).
  int64_t H = 0, W = 0, KH = 1, KW = 1, OW = 1;
  int stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0, dilation_h = 1, dilation_w = 1;
};

struct GemmEpilogue {
  const float* row_bias = nullptr;   // [M] padded to a multiple of MR
  const float* col_bias = nullptr;   // [N] padded to a multiple of NR
  const float* row_slope = nullptr;  // [M] padded (PRelu)
  Activation act;
};

// Packs A (row-major, or transposed when trans_a: A[m][k] = src[k * lda + m]) into MR-row panels.
std::vector<float> PackGemmA(const float* src, int64_t M, int64_t K, int64_t lda, bool trans_a);
void PackGemmAInto(const float* src, int64_t M, int64_t K, int64_t lda, bool trans_a, float* out);
int64_t PackedGemmASize(int64_t M, int64_t K);

// Pads a per-row or per-column vector to a multiple of `multiple` (zeros), for the epilogue.
std::vector<float> PadVector(const float* src, int64_t n, int64_t multiple);

void Gemm(int64_t M, int64_t N, int64_t K, const float* a_packed, const GemmB& b, float* c, int64_t ldc,
          const GemmEpilogue& ep, ThreadPool* pool);

}  // namespace facesight
