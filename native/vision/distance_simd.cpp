// ISA-neutral distance inner loops (GCC/Clang vector extensions), compiled once per instruction set.
// Four gallery rows per pass: each query vector load feeds four independent accumulators.
#include <cstdint>

#include "vision/distance_kernels.h"

#define FS_CONCAT2(a, b) a##b
#define FS_CONCAT(a, b) FS_CONCAT2(a, b)

namespace facesight {
namespace FS_CONCAT(simd_, FACESIGHT_ISA) {

#if defined(FACESIGHT_ISA_avx512)
constexpr int VL = 16;
#elif defined(FACESIGHT_ISA_avx2)
constexpr int VL = 8;
#else
constexpr int VL = 4;
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vf_unaligned __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf Load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }

static inline float Sum(vf v) {
  float s = 0.f;
  for (int l = 0; l < VL; ++l) s += v[l];
  return s;
}

template <bool kSquaredL2>
static inline vf Term(vf q, vf g) {
  if (kSquaredL2) {
    const vf d = q - g;
    return d * d;
  }
  return q * g;
}

template <bool kSquaredL2>
static inline float ScalarTerm(float q, float g) {
  return kSquaredL2 ? (q - g) * (q - g) : q * g;
}

template <bool kSquaredL2>
static void Rows(const float* q, const float* g, int64_t ld, int64_t rows, int64_t dim, float* out) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float* g0 = g + r * ld;
    const float* g1 = g0 + ld;
    const float* g2 = g1 + ld;
    const float* g3 = g2 + ld;
    vf a0 = {}, a1 = {}, a2 = {}, a3 = {};
    int64_t i = 0;
    for (; i + VL <= dim; i += VL) {
      const vf qv = Load(q + i);
      a0 += Term<kSquaredL2>(qv, Load(g0 + i));
      a1 += Term<kSquaredL2>(qv, Load(g1 + i));
      a2 += Term<kSquaredL2>(qv, Load(g2 + i));
      a3 += Term<kSquaredL2>(qv, Load(g3 + i));
    }
    float s0 = Sum(a0), s1 = Sum(a1), s2 = Sum(a2), s3 = Sum(a3);
    for (; i < dim; ++i) {
      s0 += ScalarTerm<kSquaredL2>(q[i], g0[i]);
      s1 += ScalarTerm<kSquaredL2>(q[i], g1[i]);
      s2 += ScalarTerm<kSquaredL2>(q[i], g2[i]);
      s3 += ScalarTerm<kSquaredL2>(q[i], g3[i]);
    }
    out[r] = s0, out[r + 1] = s1, out[r + 2] = s2, out[r + 3] = s3;
  }
  for (; r < rows; ++r) {
    const float* gr = g + r * ld;
    vf a0 = {}, a1 = {};
    int64_t i = 0;
    for (; i + 2 * VL <= dim; i += 2 * VL) {
      a0 += Term<kSquaredL2>(Load(q + i), Load(gr + i));
      a1 += Term<kSquaredL2>(Load(q + i + VL), Load(gr + i + VL));
    }
    for (; i + VL <= dim; i += VL) a0 += Term<kSquaredL2>(Load(q + i), Load(gr + i));
    float s = Sum(a0 + a1);
    for (; i < dim; ++i) s += ScalarTerm<kSquaredL2>(q[i], gr[i]);
    out[r] = s;
  }
}

extern const DistanceKernels kDistanceKernels;
const DistanceKernels kDistanceKernels = {
#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)
    FS_STR(FACESIGHT_ISA), Rows<false>, Rows<true>,
};

}  // namespace simd_
}  // namespace facesight
