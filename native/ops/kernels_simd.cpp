// ISA-neutral kernels written with GCC/Clang vector extensions. simd_variants.cmake compiles this file
// once per instruction set (FACESIGHT_ISA = generic | avx2 | avx512); the compiler maps the vector
// type onto SSE, AVX2 or AVX-512 registers and emits FMAs where the ISA has them.
#include <algorithm>
#include <cstring>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

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
// One broadcast instruction (the portable vf{} + x keeps −0.0 semantics and costs an extra add).
static inline vf Splat(float x) {
#if defined(FACESIGHT_ISA_avx512)
  return (vf)_mm512_set1_ps(x);
#elif defined(FACESIGHT_ISA_avx2)
  return (vf)_mm256_set1_ps(x);
#elif defined(__SSE2__)
  return (vf)_mm_set1_ps(x);
#else
  return vf{} + x;
#endif
}
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

// B row k is at RowAt(k): a fixed stride (packed panels, in-place matrices) or a table of row
// pointers (convolution taps). One body serves both.
struct StridedRows {
  const float* b;
  int64_t ldb;
  const float* operator()(int64_t k) const { return b + k * ldb; }
};
struct TableRows {
  const float* const* rows;
  int64_t col;
  const float* operator()(int64_t k) const { return rows[k] + col; }
};

template <typename Rows>
static inline void GemmMicroBody(int64_t kc, const float* a, Rows row_at, float* c, int64_t ldc, bool accumulate,
                                 const TileEpilogue* ep) {
  vf acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? Load(c + r * ldc + v * VL) : Splat(0.f);
  for (int64_t k = 0; k < kc; ++k) {
    const float* b = row_at(k);
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

static void GemmMicro(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                      bool accumulate, const TileEpilogue* ep) {
  GemmMicroBody(kc, a, StridedRows{b, ldb}, c, ldc, accumulate, ep);
}

static void GemmMicroRows(int64_t kc, const float* a, const float* const* rows, int64_t col, float* c, int64_t ldc,
                          bool accumulate, const TileEpilogue* ep) {
  GemmMicroBody(kc, a, TableRows{rows, col}, c, ldc, accumulate, ep);
}

static float Dot(const float* a, const float* b, int64_t n) {
  vf acc[4] = {Splat(0.f), Splat(0.f), Splat(0.f), Splat(0.f)};
  int64_t i = 0;
  for (; i + 4 * VL <= n; i += 4 * VL)
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) acc[u] += Load(a + i + u * VL) * Load(b + i + u * VL);
  for (; i + VL <= n; i += VL) acc[0] += Load(a + i) * Load(b + i);
  vf sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  float total = 0.f;
  for (int l = 0; l < VL; ++l) total += sum[l];
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

// 3×3 depthwise convolution read straight from the input: rows outside the image are skipped (zero
// padding), interior columns are whole vectors, the few edge columns take the scalar path. Stride 2
// de-interleaves two loads into even and odd lanes with shuffles.
#if defined(FACESIGHT_ISA_avx512)
#define FS_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define FS_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#elif defined(FACESIGHT_ISA_avx2)
#define FS_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14
#define FS_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15
#else
#define FS_EVEN_LANES 0, 2, 4, 6
#define FS_ODD_LANES 1, 3, 5, 7
#endif

static inline vf Even(vf a, vf b) { return __builtin_shufflevector(a, b, FS_EVEN_LANES); }
static inline vf Odd(vf a, vf b) { return __builtin_shufflevector(a, b, FS_ODD_LANES); }

static int64_t DwScratch(int64_t, int64_t, int64_t, int64_t, int) { return 0; }

static void Depthwise3x3(const Depthwise3x3Args& p, int64_t c_begin, int64_t c_end, float*) {
  const int64_t s = p.stride, H = p.H, W = p.W, OW = p.OW;
  // Output columns whose three taps all fall inside the row, with room for whole-vector loads.
  const int64_t ow_lo = (p.pad_left + s - 1) / s;
  int64_t ow_hi = OW;  // exclusive
  while (ow_hi > ow_lo && (ow_hi - 1) * s - p.pad_left + 2 >= W) --ow_hi;
  for (int64_t ch = c_begin; ch < c_end; ++ch) {
    const float* x = p.x + ch * H * W;
    float* y = p.y + ch * p.OH * OW;
    const float* w = p.weights + ch * 9;
    const float bias = p.bias ? p.bias[ch] : 0.f;
    const float slope = p.slope ? p.slope[ch] : 0.f;
    const vf w0 = Splat(w[0]), w1 = Splat(w[1]), w2 = Splat(w[2]), w3 = Splat(w[3]), w4 = Splat(w[4]),
             w5 = Splat(w[5]), w6 = Splat(w[6]), w7 = Splat(w[7]), w8 = Splat(w[8]);
    const vf wv[3][3] = {{w0, w1, w2}, {w3, w4, w5}, {w6, w7, w8}};
    for (int64_t oh = 0; oh < p.OH; ++oh) {
      const float* rows[3];
      for (int kh = 0; kh < 3; ++kh) {
        const int64_t ih = oh * s - p.pad_top + kh;
        rows[kh] = ih >= 0 && ih < H ? x + ih * W : nullptr;
      }
      float* out = y + oh * OW;
      auto scalar = [&](int64_t ow) {
        float acc = bias;
        for (int kh = 0; kh < 3; ++kh) {
          if (!rows[kh]) continue;
          for (int kw = 0; kw < 3; ++kw) {
            const int64_t iw = ow * s - p.pad_left + kw;
            if (iw >= 0 && iw < W) acc += w[kh * 3 + kw] * rows[kh][iw];
          }
        }
        out[ow] = Activate(Splat(acc), p.act, slope)[0];
      };
      int64_t ow = 0;
      for (; ow < std::min(ow_lo, OW); ++ow) scalar(ow);
      if (s == 1) {
        for (; ow + VL <= ow_hi; ow += VL) {
          vf acc = Splat(bias);
          for (int kh = 0; kh < 3; ++kh) {
            if (!rows[kh]) continue;
            const float* r = rows[kh] + ow - p.pad_left;
            acc += wv[kh][0] * Load(r) + wv[kh][1] * Load(r + 1) + wv[kh][2] * Load(r + 2);
          }
          Store(out + ow, Activate(acc, p.act, slope));
        }
      } else {
        // Loads reach 2·VL + 1 floats past the first tap; keep them inside the row.
        for (; ow + VL <= ow_hi && (ow + VL - 1) * 2 - p.pad_left + 3 < W; ow += VL) {
          vf acc = Splat(bias);
          for (int kh = 0; kh < 3; ++kh) {
            if (!rows[kh]) continue;
            const float* r = rows[kh] + 2 * ow - p.pad_left;
            const vf a = Load(r), b = Load(r + VL), c = Load(r + 2), d = Load(r + 2 + VL);
            acc += wv[kh][0] * Even(a, b) + wv[kh][1] * Odd(a, b) + wv[kh][2] * Even(c, d);
          }
          Store(out + ow, Activate(acc, p.act, slope));
        }
      }
      for (; ow < OW; ++ow) scalar(ow);
    }
  }
}

extern const SimdKernels kKernels;
const SimdKernels kKernels = {
#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)
    FS_STR(FACESIGHT_ISA), MR, NR, GemmMicro, GemmMicroRows, Dot, Depthwise3x3, DwScratch,
};

}  // namespace simd_
}  // namespace facesight
