// ISA-neutral kernels written with GCC/Clang vector extensions. simd_variants.cmake compiles this file
// once per instruction set (FACESIGHT_ISA = generic | avx2 | avx512); the compiler maps the vector
// type onto SSE, AVX2 or AVX-512 registers and emits FMAs where the ISA has them.
#include <algorithm>
#include <cstring>

#include "ops/kernels.h"

#define FS_CONCAT2(a, b) a##b
#define FS_CONCAT(a, b) FS_CONCAT2(a, b)

namespace facesight {
namespace FS_CONCAT(simd_, FACESIGHT_ISA) {

#if defined(FACESIGHT_ISA_avx512)
constexpr int VL = 16, MR = 8;
#elif defined(FACESIGHT_ISA_avx2)
constexpr int VL = 8, MR = 4;
#else
constexpr int VL = 4, MR = 4;
#endif
constexpr int NV = 3;          // vectors per micro-tile row
constexpr int NR = VL * NV;

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vf_unaligned __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf Load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }
static inline void Store(float* p, vf v) { *reinterpret_cast<vf_unaligned*>(p) = v; }
static inline vf Splat(float x) { return vf{} + x; }
static inline vf Max(vf a, vf b) { return a > b ? a : b; }
static inline vf Min(vf a, vf b) { return a < b ? a : b; }

static inline vf Activate(vf v, const Activation& act, float slope) {
  switch (act.kind) {
    case ActKind::Relu: return Max(v, Splat(0.f));
    case ActKind::Leaky: return v > 0 ? v : v * act.alpha;
    case ActKind::Clip: return Min(Max(v, Splat(act.alpha)), Splat(act.beta));
    case ActKind::PRelu: return v > 0 ? v : v * slope;
    default: return v;
  }
}

static void GemmMicro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                      bool accumulate, const TileEpilogue* ep) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? Load(c + r * ldc + v * VL) : Splat(0.f);
  for (int64_t k = 0; k < kc; ++k) {
    vf bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = Load(b + v * VL);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      vf av = Splat(a[r]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
    a += MR;
    b += ldb;
  }
  if (ep) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float rb = ep->row_bias ? ep->row_bias[r] : 0.f;
      float slope = ep->row_slope ? ep->row_slope[r] : 0.f;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        vf x = acc[r][v] + rb;
        if (ep->col_bias) x += Load(ep->col_bias + v * VL);
        acc[r][v] = Activate(x, ep->act, slope);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) Store(c + r * ldc + v * VL, acc[r][v]);
}

// Padded planes for one channel. Stride 1: one plane (rows × pw). Stride 2: the even and the odd
// columns as two planes, so every tap of an output row reads contiguous memory.
static int64_t DwPlaneWidth(int64_t OW, int stride) {
  // Columns read by vector loads of an output row, rounded up so whole vectors never leave the plane.
  int64_t need = stride == 1 ? OW + 2 : OW + 1;
  return (need + VL - 1) / VL * VL + VL;
}

static int64_t DwScratch(int64_t H, int64_t W, int64_t OH, int64_t OW, int stride) {
  (void)H; (void)W;
  int64_t rows = (OH - 1) * stride + 3;
  return rows * DwPlaneWidth(OW, stride) * (stride == 1 ? 1 : 2);
}

static void Depthwise3x3(const Depthwise3x3Args& p, int64_t c_begin, int64_t c_end, float* scratch) {
  const int s = p.stride;
  const int64_t rows = (p.OH - 1) * s + 3;
  const int64_t pw = DwPlaneWidth(p.OW, s);
  const int64_t plane = rows * pw;
  for (int64_t ch = c_begin; ch < c_end; ++ch) {
    const float* x = p.x + ch * p.H * p.W;
    float* y = p.y + ch * p.OH * p.OW;
    // Fill the padded plane(s): padded column j of row i holds x[i - pad_top][j - pad_left] or 0.
    std::memset(scratch, 0, sizeof(float) * plane * (s == 1 ? 1 : 2));
    for (int64_t i = 0; i < rows; ++i) {
      int64_t ih = i - p.pad_top;
      if (ih < 0 || ih >= p.H) continue;
      const float* src = x + ih * p.W;
      if (s == 1) {
        int64_t j0 = std::max<int64_t>(0, p.pad_left), j1 = std::min<int64_t>(pw, p.pad_left + p.W);
        if (j1 > j0) std::memcpy(scratch + i * pw + j0, src + (j0 - p.pad_left), sizeof(float) * (j1 - j0));
      } else {
        float* even = scratch + i * pw;
        float* odd = scratch + plane + i * pw;
        for (int64_t iw = 0; iw < p.W; ++iw) {
          int64_t j = iw + p.pad_left;           // padded column
          if (j >= 2 * pw) break;
          (j & 1 ? odd : even)[j >> 1] = src[iw];
        }
      }
    }
    const float* w = p.weights + ch * 9;
    const float bias = p.bias ? p.bias[ch] : 0.f;
    const float slope = p.slope ? p.slope[ch] : 0.f;
    for (int64_t oh = 0; oh < p.OH; ++oh) {
      const float* r[3];
      for (int kh = 0; kh < 3; ++kh) r[kh] = scratch + (oh * s + kh) * pw;
      float* out = y + oh * p.OW;
      int64_t ow = 0;
      for (; ow + VL <= p.OW; ow += VL) {
        vf acc = Splat(bias);
        for (int kh = 0; kh < 3; ++kh) {
          if (s == 1) {
            acc += Splat(w[kh * 3 + 0]) * Load(r[kh] + ow);
            acc += Splat(w[kh * 3 + 1]) * Load(r[kh] + ow + 1);
            acc += Splat(w[kh * 3 + 2]) * Load(r[kh] + ow + 2);
          } else {
            const float* odd = r[kh] + plane;
            acc += Splat(w[kh * 3 + 0]) * Load(r[kh] + ow);
            acc += Splat(w[kh * 3 + 1]) * Load(odd + ow);
            acc += Splat(w[kh * 3 + 2]) * Load(r[kh] + ow + 1);
          }
        }
        Store(out + ow, Activate(acc, p.act, slope));
      }
      for (; ow < p.OW; ++ow) {
        float acc = bias;
        for (int kh = 0; kh < 3; ++kh) {
          if (s == 1) {
            acc += w[kh * 3] * r[kh][ow] + w[kh * 3 + 1] * r[kh][ow + 1] + w[kh * 3 + 2] * r[kh][ow + 2];
          } else {
            const float* odd = r[kh] + plane;
            acc += w[kh * 3] * r[kh][ow] + w[kh * 3 + 1] * odd[ow] + w[kh * 3 + 2] * r[kh][ow + 1];
          }
        }
        vf v = Activate(Splat(acc), p.act, slope);
        out[ow] = v[0];
      }
    }
  }
}

extern const SimdKernels kKernels;
const SimdKernels kKernels = {
#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)
    FS_STR(FACESIGHT_ISA), MR, NR, GemmMicro, Depthwise3x3, DwScratch,
};

}  // namespace simd_
}  // namespace facesight
