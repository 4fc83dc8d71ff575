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

// VL: floats per register; MR: GEMM micro-tile rows; the blocked conv's micro-tile is
// up to kConvTileBlocks output blocks × TilePixels(blocks) pixels of accumulators (on AVX-512 24 of the
// 32 registers for 4 blocks; narrower tiles are longer, so that there are always enough independent
// accumulators to keep both FMA pipes busy).
// The 3×3 depthwise kernel computes kDepthwisePixels output pixels at once inside the image (their
// accumulators next to the nine weight vectors).
#if defined(FACESIGHT_ISA_avx512)
constexpr int VL = 16, MR = 8, kConvTileBlocks = 4, kDepthwisePixels = 8;
constexpr int TilePixels(int blocks) { return blocks == 1 ? 12 : blocks == 2 ? 8 : 6; }
#elif defined(FACESIGHT_ISA_avx2)
constexpr int VL = 8, MR = 4, kConvTileBlocks = 1, kDepthwisePixels = 2;
constexpr int TilePixels(int) { return 6; }
#else
constexpr int VL = 4, MR = 4, kConvTileBlocks = 1, kDepthwisePixels = 2;
constexpr int TilePixels(int) { return 2; }
#endif
constexpr int NV = 3;          // vectors per micro-tile row
constexpr int NR = VL * NV;

typedef float vf __attribute__((vector_size(VL * 4)));
// NCHW16c kernels: one 16-float vector is one pixel's channel block (two AVX2 / four SSE registers).
typedef float vb __attribute__((vector_size(kChannelBlock * 4)));

// Unaligned loads and stores of either vector type (compiled to single vmovups).
template <typename V>
static inline V LoadAs(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename V>
static inline void StoreAs(float* p, V v) { std::memcpy(p, &v, sizeof v); }
static inline vf Load(const float* p) { return LoadAs<vf>(p); }
static inline void Store(float* p, vf v) { StoreAs(p, v); }
static inline vb LoadBlock(const float* p) { return LoadAs<vb>(p); }
static inline void StoreBlock(float* p, vb v) { StoreAs(p, v); }
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
  const int64_t oh_begin = p.oh_begin, oh_end = p.oh_end, y_plane = p.y_plane;
  if (oh_begin >= oh_end) return;
  // The image rows those output rows read.
  const int64_t ih_begin = std::max<int64_t>(0, oh_begin * s - p.pad_top);
  const int64_t ih_end = std::min<int64_t>(H, (oh_end - 1) * s - p.pad_top + 3);
  // Zero the padding only (pad rows, and the columns left and right of each image row): the interior
  // is overwritten per channel, and the padding stays zero across channels.
  std::fill_n(scratch, p.pad_top * width, 0.f);
  std::fill_n(scratch + (p.pad_top + H) * width, (rows - p.pad_top - H) * width, 0.f);
  for (int64_t ih = ih_begin; ih < ih_end; ++ih) {
    float* row = scratch + (ih + p.pad_top) * width;
    std::fill_n(row, p.pad_left, 0.f);
    std::fill_n(row + p.pad_left + W, width - p.pad_left - W, 0.f);
  }
  for (int64_t ch = c_begin; ch < c_end; ++ch) {
    const float* x = p.x + ch * H * W;
    for (int64_t ih = ih_begin; ih < ih_end; ++ih) CopyRow(scratch + (ih + p.pad_top) * width + p.pad_left, x + ih * W, W);
    float* y = p.y + ch * y_plane;
    const float* w = p.weights + ch * 9;
    const float bias = p.bias ? p.bias[ch] : 0.f;
    const float slope = p.slope ? p.slope[ch] : 0.f;
    vf wv[3][3];
    for (int k = 0; k < 9; ++k) wv[k / 3][k % 3] = Splat(w[k]);
    for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
      const float* top = scratch + oh * s * width;
      float* out = y + (oh - oh_begin) * OW;
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

// A store that bypasses the caches (no read-for-ownership of the line): for outputs far larger than
// the caches, which the next layer reads from memory anyway. p must be 64-byte aligned.
static inline void StreamBlock(float* p, vb v) {
#if defined(FACESIGHT_ISA_avx512)
  _mm512_stream_ps(p, (__m512)v);
#elif defined(FACESIGHT_ISA_avx2)
  _mm256_stream_ps(p, __m256{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]});
  _mm256_stream_ps(p + 8, __m256{v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]});
#elif defined(__SSE2__)
  for (int k = 0; k < 16; k += 4) _mm_stream_ps(p + k, __m128{v[k], v[k + 1], v[k + 2], v[k + 3]});
#else
  StoreBlock(p, v);
#endif
}

// Prefetches `rows` rows of `row_floats` floats from p on (only the first `limit` exist), a cache
// line at a time.
static inline void PrefetchRows(const float* p, int64_t rows, int64_t limit, int64_t row_floats) {
#if defined(__SSE2__)
  for (int64_t r = 0; r < std::min(rows, limit); ++r)
    for (int64_t f = 0; f < row_floats; f += 64 / sizeof(float))
      _mm_prefetch(reinterpret_cast<const char*>(p + r * row_floats + f), _MM_HINT_T0);
#else
  (void)p, (void)rows, (void)limit, (void)row_floats;
#endif
}

// ---- Direct NCHW conv with few output channels. Each input row is copied once, zero-padded and split
// into its stride phases, so that tap (kh, kw) of output pixels ow … ow+VL−1 is one contiguous vector
// load: phase kw % stride of the row, from column ow + kw / stride. A channel's rows live in a ring of
// KH slots (row ih in slot ih % KH), enough for one output row's taps; the next output row fills
// only the rows it adds.
static int64_t DirectPhaseWidth(const DirectConvArgs& a) {
  return (a.OW + 2 * VL - 1) / (2 * VL) * (2 * VL) + (a.KW - 1) / a.stride + 1;
}
static int64_t DirectScratch(const DirectConvArgs& a) {
  return (a.C * a.KH + 1) * a.stride * DirectPhaseWidth(a) + VL;  // the ring, then one padded row
}

// Output channels m0 … m0+MB−1 of one output row, two vectors of pixels at a time. taps[c·KH + kh]:
// the phase rows of that tap row, null where it lies outside the image.
template <int MB>
static void DirectRow(const DirectConvArgs& a, const float* const* taps, int64_t m0, int64_t oh) {
  const int64_t phase_width = DirectPhaseWidth(a), kernel = a.KH * a.KW;
  const float* wm = a.weights + m0 * a.C * kernel;
  for (int64_t ow = 0; ow < a.OW; ow += 2 * VL) {
    vf acc[MB][2];
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m) acc[m][0] = acc[m][1] = Splat(a.bias[m0 + m]);
    for (int64_t k = 0; k < a.C * a.KH; ++k) {
      if (!taps[k]) continue;
      const float* wk = wm + k * a.KW;
      for (int64_t kw = 0; kw < a.KW; ++kw) {
        const float* r = taps[k] + (kw % a.stride) * phase_width + kw / a.stride + ow;
        const vf x0 = Load(r), x1 = Load(r + VL);
#pragma GCC unroll 8
        for (int m = 0; m < MB; ++m) {
          const vf w = Splat(wk[m * a.C * kernel + kw]);
          acc[m][0] += w * x0;
          acc[m][1] += w * x1;
        }
      }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m) {
      const float slope = a.slope ? a.slope[m0 + m] : 0.f;
      float* y = a.y + ((m0 + m) * a.OH + oh) * a.OW + ow;
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        const int64_t n = std::min<int64_t>(VL, a.OW - ow - v * VL);
        if (n <= 0) break;
        const vf out = Activate(acc[m][v], a.act, slope);
        if (n == VL) Store(y + v * VL, out);
        else StorePartial(y + v * VL, out, n);
      }
    }
  }
}

template <int MB = 8>
static void DirectRowChannels(const DirectConvArgs& a, const float* const* taps, int64_t m0, int64_t n, int64_t oh) {
  if constexpr (MB >= 1) {
    if (n == MB) return DirectRow<MB>(a, taps, m0, oh);
    DirectRowChannels<MB - 1>(a, taps, m0, n, oh);
  }
}

static void ConvDirect(const DirectConvArgs& a, int64_t oh_begin, int64_t oh_end, float* scratch) {
  const int64_t s = a.stride, phase_width = DirectPhaseWidth(a), padded_width = s * phase_width;
  float* padded = scratch + a.C * a.KH * padded_width;  // one input row with its zero padding (s = 2)
  const float* taps[64];                                 // C·KH ≤ 64 (the op checks)
  int64_t held[64];                                      // the input row in each ring slot
  std::fill_n(held, a.C * a.KH, int64_t{-1});
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    for (int64_t c = 0; c < a.C; ++c)
      for (int64_t kh = 0; kh < a.KH; ++kh) {
        const int64_t ih = oh * s - a.pad_top + kh, k = c * a.KH + kh;
        if (ih < 0 || ih >= a.H) {
          taps[k] = nullptr;
          continue;
        }
        const int64_t slot = c * a.KH + ih % a.KH;
        float* phases = scratch + slot * padded_width;
        taps[k] = phases;
        if (held[slot] == ih) continue;
        held[slot] = ih;
        float* row = s == 1 ? phases : padded;
        const int64_t copied = std::min(a.W, padded_width - a.pad_left);
        std::fill_n(row, a.pad_left, 0.f);
        CopyRow(row + a.pad_left, a.x + (c * a.H + ih) * a.W, copied);
        std::fill(row + a.pad_left + copied, row + padded_width, 0.f);
        if (s == 2) Deinterleave2(padded, padded_width, phases, phases + phase_width);
      }
    // The rows the next output row adds, fetched while this one computes (read straight from memory,
    // they stalled the copies above: batch-8 RetinaFace stem −30 %).
    const int64_t next_lo = std::max<int64_t>((oh + 1) * s - a.pad_top + a.KH - s, 0);
    const int64_t next_hi = std::min<int64_t>((oh + 1) * s - a.pad_top + a.KH, a.H);
    if (oh + 1 < oh_end)
      for (int64_t c = 0; c < a.C && next_lo < next_hi; ++c)
        PrefetchRows(a.x + (c * a.H + next_lo) * a.W, next_hi - next_lo, next_hi - next_lo, a.W);
    for (int64_t m0 = 0; m0 < a.M; m0 += 8) DirectRowChannels(a, taps, m0, std::min<int64_t>(8, a.M - m0), oh);
  }
}

// ---- NCHW16c kernels (vb: one pixel's channel block).
static inline vb SplatBlock(float x) {
#if defined(FACESIGHT_ISA_avx512)
  return (vb)_mm512_set1_ps(x);
#else
  return vb{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x};
#endif
}
// The activation with its kind fixed at compile time and its constants in registers, so that a tile's
// epilogue is straight-line code and its accumulators stay in registers (a switch per output vector
// spilled them: a third of a 32-channel pointwise conv's time).
template <ActKind Kind>
struct BlockActivation {
  vb lo, hi;
  float alpha;
  explicit BlockActivation(const Activation& act) : lo(SplatBlock(act.alpha)), hi(SplatBlock(act.beta)), alpha(act.alpha) {}
  vb operator()(vb v, const float* slope) const {
    if constexpr (Kind == ActKind::Relu) return v > 0 ? v : vb{};
    else if constexpr (Kind == ActKind::Leaky) return v > 0 ? v : v * alpha;
    else if constexpr (Kind == ActKind::Clip) {
      v = v > lo ? v : lo;
      return v < hi ? v : hi;
    } else if constexpr (Kind == ActKind::PRelu) return v > 0 ? v : v * LoadBlock(slope);
    else return v;
  }
};

// Calls f(BlockActivation<act.kind>): one dispatch per tile or plane.
template <typename F>
static inline void WithActivation(const Activation& act, F&& f) {
  switch (act.kind) {
    case ActKind::Relu: return f(BlockActivation<ActKind::Relu>(act));
    case ActKind::Leaky: return f(BlockActivation<ActKind::Leaky>(act));
    case ActKind::Clip: return f(BlockActivation<ActKind::Clip>(act));
    case ActKind::PRelu: return f(BlockActivation<ActKind::PRelu>(act));
    default: return f(BlockActivation<ActKind::None>(act));
  }
}

// Output blocks ob0 … ob0+OB−1 at pixels ow0 … ow0+P−1 of row oh. Unchecked tiles lie where every
// column tap is inside the image; Checked tiles (P = 1, the borders) skip the taps that are not.
template <int OB, int P, bool XBlocked, bool Checked, int FixedC = 0>
static void ConvBlockedTile(const BlockedConvArgs& a, int64_t ob0, int64_t oh, int64_t ow0) {
  constexpr int64_t B = kChannelBlock;
  const int64_t ps = XBlocked ? B : 1;          // floats between neighbouring input pixels
  const int64_t cs = XBlocked ? 1 : a.H * a.W;  // between channels of one block
  const int64_t cbs = a.H * a.W * B;            // between channel blocks (the same in both layouts)
  const int64_t taps = a.KH * a.KW;
  const int64_t obs = taps * a.C * B;           // between output blocks of the packed weights
  const int64_t pstep = a.stride_w * ps;
  // Every loop over o and p unrolled, so that the accumulators become registers across the runtime
  // loops (kept as an array, they went through the stack around every input-channel block: the RGB
  // stem spent more on that than on its FMAs).
  vb acc[OB][P];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
    const vb b = LoadBlock(a.bias + (ob0 + o) * B);
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) acc[o][p] = b;
  }
  for (int64_t kh = 0; kh < a.KH; ++kh) {
    const int64_t ih = oh * a.stride_h - a.pad_top + kh * a.dilation_h;
    if (ih < 0 || ih >= a.H) continue;
    for (int64_t kw = 0; kw < a.KW; ++kw) {
      const int64_t iw = ow0 * a.stride_w - a.pad_left + kw * a.dilation_w;
      if (Checked && (iw < 0 || iw >= a.W)) continue;
      const float* xp = a.x + (ih * a.W + iw) * ps;
      const float* wp = a.w + (ob0 * taps + kh * a.KW + kw) * a.C * B;
      for (int64_t c0 = 0; c0 < (FixedC ? FixedC : a.C); c0 += B) {
        // FixedC: an RGB stem's three NCHW channels, unrolled (a runtime count of 3 costs half its speed).
        const int64_t cn = FixedC ? FixedC : XBlocked ? B : std::min<int64_t>(B, a.C - c0);
        const float* xc = xp + (c0 / B) * cbs;
        const float* wc = wp + c0 * B;
        for (int64_t c = 0; c < cn; ++c) {
          vb xv[P];
#pragma GCC unroll 16
          for (int p = 0; p < P; ++p) xv[p] = SplatBlock(xc[c * cs + p * pstep]);
#pragma GCC unroll 8
          for (int o = 0; o < OB; ++o) {
            const vb wv = LoadBlock(wc + o * obs + c * B);
#pragma GCC unroll 16
            for (int p = 0; p < P; ++p) acc[o][p] += wv * xv[p];
          }
        }
      }
    }
  }
  float* y = a.y + ob0 * a.y_plane + ((oh - a.y_row0) * a.OW + ow0) * B;
  auto slope = [&](int o) { return a.slope ? a.slope + (ob0 + o) * B : nullptr; };  // PRelu only
  WithActivation(a.act, [&](const auto& activate) {
    if (a.stream_out) {
#pragma GCC unroll 8
      for (int o = 0; o < OB; ++o)
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) StreamBlock(y + o * a.y_plane + p * B, activate(acc[o][p], slope(o)));
    } else {
#pragma GCC unroll 8
      for (int o = 0; o < OB; ++o)
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) StoreBlock(y + o * a.y_plane + p * B, activate(acc[o][p], slope(o)));
    }
  });
}

// The last n < P interior pixels of a row.
template <int OB, bool XBlocked, int FixedC, int P = TilePixels(OB) - 1>
static void ConvBlockedTail(const BlockedConvArgs& a, int64_t ob0, int64_t oh, int64_t ow0, int64_t n) {
  if constexpr (P >= 1) {
    if (n == P) return ConvBlockedTile<OB, P, XBlocked, false, FixedC>(a, ob0, oh, ow0);
    ConvBlockedTail<OB, XBlocked, FixedC, P - 1>(a, ob0, oh, ow0, n);
  }
}

// Output columns [lo, hi) read only columns inside the image for every tap.
static void InteriorColumns(int64_t W, int64_t OW, int64_t KW, int64_t stride, int64_t pad, int64_t dilation,
                            int64_t* lo, int64_t* hi) {
  const int64_t first = (pad + stride - 1) / stride;
  const int64_t span = W - 1 + pad - (KW - 1) * dilation;
  const int64_t end = span < 0 ? 0 : span / stride + 1;
  *lo = std::min(first, OW);
  *hi = std::max(*lo, std::min(end, OW));
}

template <int OB, bool XBlocked, int FixedC = 0>
static void ConvBlockedRows(const BlockedConvArgs& a, int64_t ob0, int64_t oh_begin, int64_t oh_end, int64_t ow_begin,
                            int64_t ow_end) {
  if constexpr (!XBlocked && FixedC == 0) {
    if (a.C == 3) return ConvBlockedRows<OB, XBlocked, 3>(a, ob0, oh_begin, oh_end, ow_begin, ow_end);
  }
  int64_t lo, hi;
  InteriorColumns(a.W, a.OW, a.KW, a.stride_w, a.pad_left, a.dilation_w, &lo, &hi);
  lo = std::clamp(lo, ow_begin, ow_end);
  hi = std::clamp(hi, lo, ow_end);
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    for (int64_t ow = ow_begin; ow < lo; ++ow) ConvBlockedTile<OB, 1, XBlocked, true, FixedC>(a, ob0, oh, ow);
    int64_t ow = lo;
    for (; ow + TilePixels(OB) <= hi; ow += TilePixels(OB))
      ConvBlockedTile<OB, TilePixels(OB), XBlocked, false, FixedC>(a, ob0, oh, ow);
    ConvBlockedTail<OB, XBlocked, FixedC>(a, ob0, oh, ow, hi - ow);
    for (ow = hi; ow < ow_end; ++ow) ConvBlockedTile<OB, 1, XBlocked, true, FixedC>(a, ob0, oh, ow);
  }
}

template <bool XBlocked, int OB = kConvTileBlocks>
static void ConvBlockedGroup(const BlockedConvArgs& a, int64_t ob0, int64_t n, int64_t oh_begin, int64_t oh_end,
                             int64_t ow_begin, int64_t ow_end) {
  if constexpr (OB >= 1) {
    if (n == OB) return ConvBlockedRows<OB, XBlocked>(a, ob0, oh_begin, oh_end, ow_begin, ow_end);
    ConvBlockedGroup<XBlocked, OB - 1>(a, ob0, n, oh_begin, oh_end, ow_begin, ow_end);
  }
}

static void ConvBlocked(const BlockedConvArgs& a, int64_t ob_begin, int64_t ob_end, int64_t oh_begin, int64_t oh_end,
                        int64_t ow_begin, int64_t ow_end) {
  for (int64_t ob = ob_begin; ob < ob_end; ob += kConvTileBlocks) {
    const int64_t n = std::min<int64_t>(kConvTileBlocks, ob_end - ob);
    if (a.x_blocked) ConvBlockedGroup<true>(a, ob, n, oh_begin, oh_end, ow_begin, ow_end);
    else ConvBlockedGroup<false>(a, ob, n, oh_begin, oh_end, ow_begin, ow_end);
  }
#if defined(__SSE2__)
  if (a.stream_out) _mm_sfence();  // streamed stores are visible to other threads after this
#endif
}

// Output pixels [*ow, hi) of one row, all taps inside the row: tiles of P pixels, then of fewer.
// rows[kh]: the input row of kernel row kh, shifted by the left padding (null outside the image).
template <int K, int P, typename Activate>
static inline void DepthwiseTiles(const BlockedDepthwiseArgs& a, const float* const* rows, const vb* wt, vb bias,
                                  const float* slope, const Activate& activate, float* out_row, int64_t* ow,
                                  int64_t hi) {
  constexpr int64_t B = kChannelBlock;
  for (; *ow + P <= hi; *ow += P) {
    vb acc[P];
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) acc[p] = bias;
#pragma GCC unroll 3
    for (int kh = 0; kh < K; ++kh) {
      if (!rows[kh]) continue;
      const float* row = rows[kh] + *ow * a.stride_w * B;
#pragma GCC unroll 3
      for (int kw = 0; kw < K; ++kw) {
        const float* tap = row + kw * a.dilation_w * B;
#pragma GCC unroll 16
        for (int p = 0; p < P; ++p) acc[p] += wt[kh * K + kw] * LoadBlock(tap + p * a.stride_w * B);
      }
    }
    float* out = out_row + *ow * B;
#pragma GCC unroll 16
    for (int p = 0; p < P; ++p) StoreBlock(out + p * B, activate(acc[p], slope));
  }
  if constexpr (P > 1) DepthwiseTiles<K, P / 2>(a, rows, wt, bias, slope, activate, out_row, ow, hi);
}

// One channel block's output rows; K = 3 unrolls a 3×3 kernel with its nine weight vectors held in
// registers, K = 0 reads the kernel size from the arguments.
template <int K, typename Activate>
static void DepthwiseBlockedPlane(const BlockedDepthwiseArgs& a, int64_t cb, int64_t oh_begin, int64_t oh_end,
                                  const Activate& activate) {
  constexpr int64_t B = kChannelBlock;
  const int64_t KH = K ? K : a.KH, KW = K ? K : a.KW;
  const float* x = a.x + cb * a.H * a.W * B;
  const float* w = a.w + cb * KH * KW * B;
  float* y = a.y + cb * a.y_plane;
  const vb bias = LoadBlock(a.bias + cb * B);
  const float* slope = a.slope ? a.slope + cb * B : nullptr;
  vb wt[K ? K * K : 1];
  if (K)
    for (int64_t t = 0; t < KH * KW; ++t) wt[t] = LoadBlock(w + t * B);
  int64_t lo, hi;
  InteriorColumns(a.W, a.OW, KW, a.stride_w, a.pad_left, a.dilation_w, &lo, &hi);
  // One output pixel over the taps inside the image, a rectangle [kh0, kh1) × [kw0, kw1) of the kernel.
  auto inside = [](int64_t i0, int64_t dilation, int64_t size, int64_t taps, int64_t* k0, int64_t* k1) {
    *k0 = i0 >= 0 ? 0 : std::min(taps, (-i0 + dilation - 1) / dilation);
    *k1 = size - i0 <= 0 ? 0 : std::min(taps, (size - i0 + dilation - 1) / dilation);
  };
  auto edge_pixel = [&](int64_t oh, int64_t ow) {
    const int64_t ih0 = oh * a.stride_h - a.pad_top, iw0 = ow * a.stride_w - a.pad_left;
    int64_t kh0, kh1, kw0, kw1;
    inside(ih0, a.dilation_h, a.H, KH, &kh0, &kh1);
    inside(iw0, a.dilation_w, a.W, KW, &kw0, &kw1);
    vb acc = bias;
    for (int64_t kh = kh0; kh < kh1; ++kh) {
      const float* row = x + (ih0 + kh * a.dilation_h) * a.W * B;
      for (int64_t kw = kw0; kw < kw1; ++kw) {
        const vb wv = K ? wt[kh * KW + kw] : LoadBlock(w + (kh * KW + kw) * B);
        acc += wv * LoadBlock(row + (iw0 + kw * a.dilation_w) * B);
      }
    }
    StoreBlock(y + ((oh - a.y_row0) * a.OW + ow) * B, activate(acc, slope));
  };
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    int64_t ow = 0;
    if constexpr (K != 0) {
      // Columns whose taps are all inside the image, P pixels at a time (P = kDepthwisePixels, then
      // smaller for the rest), each tap a vector per pixel with no per-pixel bounds checks; kernel
      // rows outside the image (top and bottom output rows) are skipped for the whole tile. One pixel
      // at a time, the nine dependent FMAs of its accumulator were a latency chain the core cannot hide.
      const float* rows[K];
      const int64_t ih0 = oh * a.stride_h - a.pad_top;
      for (int kh = 0; kh < K; ++kh) {
        const int64_t ih = ih0 + kh * a.dilation_h;
        rows[kh] = ih >= 0 && ih < a.H ? x + (ih * a.W - a.pad_left) * B : nullptr;
      }
      float* out_row = y + (oh - a.y_row0) * a.OW * B;
      // The input rows that the next output row reads first, asked for now: they come from memory
      // while this row computes (FaceNet b32 −4.6 %; the hardware prefetcher follows the row streams late).
      const int64_t next_row = ih0 + (K - 1) * a.dilation_h + 1;
      if (next_row >= 0) PrefetchRows(x + next_row * a.W * B, a.stride_h, a.H - next_row, a.W * B);
      for (; ow < lo; ++ow) edge_pixel(oh, ow);
      DepthwiseTiles<K, kDepthwisePixels>(a, rows, wt, bias, slope, activate, out_row, &ow, hi);
    }
    for (; ow < a.OW; ++ow) edge_pixel(oh, ow);
  }
}

static void DepthwiseBlocked(const BlockedDepthwiseArgs& a, int64_t cb_begin, int64_t cb_end, int64_t oh_begin,
                             int64_t oh_end) {
  for (int64_t cb = cb_begin; cb < cb_end; ++cb) {
    WithActivation(a.act, [&](const auto& activate) {
      if (a.KH == 3 && a.KW == 3) DepthwiseBlockedPlane<3>(a, cb, oh_begin, oh_end, activate);
      else DepthwiseBlockedPlane<0>(a, cb, oh_begin, oh_end, activate);
    });
  }
}

extern const SimdKernels kKernels;
const SimdKernels kKernels = {
#define FS_STR2(x) #x
#define FS_STR(x) FS_STR2(x)
    FS_STR(FACESIGHT_ISA), MR, NR, GemmMicro, GemmMicroRows, FirstNonFinite, Deinterleave2, Dot, Depthwise3x3, DwScratch,
    ConvDirect, DirectScratch, ConvBlocked, kConvTileBlocks, [](int64_t blocks) { return TilePixels(static_cast<int>(std::min<int64_t>(blocks, kConvTileBlocks))); },
    DepthwiseBlocked,
};

}  // namespace simd_
}  // namespace facesight
