// Internal to vision/: the SIMD inner products of distance.cpp, compiled once per instruction set
// (distance_simd.cpp, see simd_variants.cmake) and picked at run time like ops/kernels.h.
#pragma once
#include <cstdint>

namespace facesight {

struct DistanceKernels {
  const char* isa;
  // out[r] = Σ_i q[i] · g[r·ld + i] for r < rows.
  void (*dot_rows)(const float* q, const float* g, int64_t ld, int64_t rows, int64_t dim, float* out);
  // out[r] = Σ_i (q[i] − g[r·ld + i])² for r < rows.
  void (*squared_l2_rows)(const float* q, const float* g, int64_t ld, int64_t rows, int64_t dim, float* out);
};

const DistanceKernels& DistanceSimd();

}  // namespace facesight
