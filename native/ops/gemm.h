// Blocked single-precision GEMM over the SIMD micro-kernel: C[M×N] = A[M×K] · B[K×N] + epilogue.
// A is always pre-packed (weights at plan time, or activations per run); B is read in place from a
// row-major matrix or from the shifted rows of a convolution's input ("taps"), or packed from a
// transposed matrix.
#pragma once
#include <cstdint>
#include <vector>

#include "common/thread_pool.h"
#include "ops/kernels.h"

namespace facesight {

// How to read B[k][n].
struct GemmB {
  enum class Kind { RowMajor, Transposed, Taps, Packed } kind = Kind::RowMajor;
  const float* data = nullptr;
  int64_t ld = 0;  // RowMajor: row stride (≥ N); Transposed: B[k][n] = data[n * ld + k]
  // Taps: a convolution as a sum of shifted GEMMs. k = tap · tap_rows + c reads row
  // data + tap_offsets[tap] + c · ld (ld = channel stride). Read in place, never packed.
  const int64_t* tap_offsets = nullptr;
  int64_t tap_rows = 0;
  // Packed: data holds NR-column panels of all K rows, as made by PackGemmB (constant weights).
};

// Several images as one GEMM (a batch's convolution shares its weights): column j is pixel
// j % cols_per_image of image j / cols_per_image, whose B rows start b_image_stride floats and whose
// C rows start c_image_stride floats after the previous image's. cols_per_image 0 = one image.
struct GemmBatch {
  int64_t cols_per_image = 0;
  int64_t b_image_stride = 0;
  int64_t c_image_stride = 0;
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

// Packs B (row-major K×N with row stride ld, or transposed: B[k][n] = src[n * ld + k]) into the
// NR-column panels GemmB::Kind::Packed reads: [ceil(N/NR)][K][NR], zero padded.
std::vector<float> PackGemmB(const float* src, int64_t K, int64_t N, int64_t ld, bool transposed);

// Pads a per-row or per-column vector to a multiple of `multiple` (zeros), for the epilogue.
std::vector<float> PadVector(const float* src, int64_t n, int64_t multiple);

void Gemm(int64_t M, int64_t N, int64_t K, const float* a_packed, const GemmB& b, float* c, int64_t ldc,
          const GemmEpilogue& ep, ThreadPool* pool, const GemmBatch& batch = GemmBatch{});

}  // namespace facesight
