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

// x − x is 0 for finite x and NaN otherwise; summing a block of those finds a bad block cheaply.
static int64_t FirstNonFinite(const float* x, int64_t n) {
  constexpr int64_t kBlock = 64 * VL;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    vf acc = Splat(0.f);
    int64_t i = b;
    for (; i + VL <= e; i += VL) { vf v = Load(x + i); acc += v - v; }
    float tail = 0.f;
    for (; i < e; ++i) tail += x[i] - x[i];
    float sum = tail;
    for (int l = 0; l < VL; ++l) sum += acc[l];
    if (sum != sum)
      for (i = b; i < e; ++i)
        if (x[i] - x[i] != 0.f) return i;
  }
  return -1;
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

// 3×3 depthwise convolution over a zero-padded copy of each channel: the copy is laid out once per
// channel (pad rows and columns are zeroed once per call and never written again), after which every
// output vector is computed with plain loads and no edge cases. Stride 2 de-interleaves two loads
// into even and odd lanes with shuffles.
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

static void Deinterleave2(const float* src, int64_t n, float* even, float* odd) {
  int64_t i = 0;  // pairs done
  for (; 2 * (i + VL) <= n; i += VL) {
    const vf a = Load(src + 2 * i), b = Load(src + 2 * i + VL);
    Store(even + i, Even(a, b));
    Store(odd + i, Odd(a, b));
  }
  for (int64_t j = 2 * i; j < n; ++j) (j & 1 ? odd : even)[j >> 1] = src[j];
}

// Width of one padded row: every vector load of every output vector stays inside it.
static int64_t DwRowWidth(int64_t W, int64_t OW, int stride) {
  const int64_t ow_vectors = (OW + VL - 1) / VL * VL;
  return std::max<int64_t>(2 + W + VL, stride * ow_vectors + 2 * VL + 2);  // pad_left ≤ 2
}

static int64_t DwRows(int64_t H, int64_t OH, int stride) { return std::max<int64_t>(H + 4, (OH - 1) * stride + 3); }

static int64_t DwScratch(int64_t H, int64_t W, int64_t OH, int64_t OW, int stride) {
  return DwRows(H, OH, stride) * DwRowWidth(W, OW, stride) + VL;
}

// The first n < VL lanes of a vector, to and from memory (AVX-512 masks; a short loop elsewhere).
static inline vf LoadPartial(const float* p, int64_t n) {
#if defined(FACESIGHT_ISA_avx512)
  return (vf)_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
#else
  vf v = Splat(0.f);
  for (int64_t i = 0; i < n; ++i) v[i] = p[i];
  return v;
#endif
}
static inline void StorePartial(float* p, vf v, int64_t n) {
#if defined(FACESIGHT_ISA_avx512)
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), (__m512)v);
#else
  for (int64_t i = 0; i < n; ++i) p[i] = v[i];
#endif
}

// Copies n floats with whole vectors (rows here are short: no call overhead).
static inline void CopyRow(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + VL <= n; i += VL) Store(dst + i, Load(src + i));
  if (i < n) StorePartial(dst + i, LoadPartial(src + i, n - i), n - i);
}

static void Depthwise3x3(const Depthwise3x3Args& p, int64_t c_begin, int64_t c_end, float* scratch) {
  const int s = p.stride;
  const int64_t H = p.H, W = p.W, OW = p.OW;
  const int64_t width = DwRowWidth(W, OW, s);
  const int64_t rows = DwRows(H, p.OH, s);
  // Zero the padding only (pad rows, and the columns left and right of each image row): the interior
  // is overwritten per channel, and the padding stays zero across channels.
  std::fill_n(scratch, p.pad_top * width, 0.f);
  std::fill_n(scratch + (p.pad_top + H) * width, (rows - p.pad_top - H) * width, 0.f);
  for (int64_t ih = 0; ih < H; ++ih) {
    float* row = scratch + (ih + p.pad_top) * width;
    std::fill_n(row, p.pad_left, 0.f);
    std::fill_n(row + p.pad_left + W, width - p.pad_left - W, 0.f);
  }
  for (int64_t ch = c_begin; ch < c_end; ++ch) {
    const float* x = p.x + ch * H * W;
    for (int64_t ih = 0; ih < H; ++ih) CopyRow(scratch + (ih + p.pad_top) * width + p.pad_left, x + ih * W, W);
    float* y = p.y + ch * p.OH * OW;
    const float* w = p.weights + ch * 9;
    const float bias = p.bias ? p.bias[ch] : 0.f;
    const float slope = p.slope ? p.slope[ch] : 0.f;
    vf wv[3][3];
    for (int k = 0; k < 9; ++k) wv[k / 3][k % 3] = Splat(w[k]);
    for (int64_t oh = 0; oh < p.OH; ++oh) {
      const float* top = scratch + oh * s * width;
      float* out = y + oh * OW;
      for (int64_t ow = 0; ow < OW; ow += VL) {
        vf acc = Splat(bias);
#pragma GCC unroll 3
        for (int kh = 0; kh < 3; ++kh) {
          if (s == 1) {
            const float* r = top + kh * width + ow;
            acc += wv[kh][0] * Load(r) + wv[kh][1] * Load(r + 1) + wv[kh][2] * Load(r + 2);
          } else {
            const float* r = top + kh * width + 2 * ow;
            const vf a = Load(r), b = Load(r + VL), c = Load(r + 2), d = Load(r + 2 + VL);
            acc += wv[kh][0] * Even(a, b) + wv[kh][1] * Odd(a, b) + wv[kh][2] * Even(c, d);
          }
        }
        acc = Activate(acc, p.act, slope);
        if (ow + VL <= OW) Store(out + ow, acc);
        else StorePartial(out + ow, acc, OW - ow);
      }
    }
  }
}

extern const SimdKernels kKernels;
const SimdKernels kKernels = {
#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)
    FS_STR(FACESIGHT_ISA), MR, NR, GemmMicro, GemmMicroRows, FirstNonFinite, Deinterleave2, Dot, Depthwise3x3, DwScratch,
};

}  // namespace simd_
}  // namespace facesight
