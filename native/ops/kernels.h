// The SIMD kernels, compiled once per instruction set (kernels_simd.cpp) and chosen at run time.
// Callers go through Kernels(); the tile sizes MR/NR differ per variant, so packed layouts must be
// made with the same table that runs them.
#pragma once
#include <cstdint>

namespace facesight {

// Activation fused into a kernel's store. Leaky uses alpha; Clip uses [alpha, beta]; PRelu reads a
// per-row slope array.
enum class ActKind { None, Relu, Leaky, Clip, PRelu };

struct Activation {
  ActKind kind = ActKind::None;
  float alpha = 0.f, beta = 0.f;
};

// Per-tile epilogue for the GEMM micro-kernel. Pointers are already offset to the tile and are
// padded so a full MR rows / NR columns can be read.
struct TileEpilogue {
  const float* row_bias = nullptr;   // MR values
  const float* col_bias = nullptr;   // NR values
  const float* row_slope = nullptr;  // MR values (PRelu)
  Activation act;
};

// Geometry of a 3×3 depthwise convolution over one image's channel range (NCHW).
struct Depthwise3x3Args {
  const float* x;        // [C][H][W]
  float* y;              // [C][OH][OW]
  const float* weights;  // [C][9]
  const float* bias;     // [C] or null
  const float* slope;    // [C] PRelu slopes or null
  Activation act;
  int64_t H, W, OH, OW;
  int stride;            // 1 or 2
  int pad_top, pad_left;
  int64_t oh_begin, oh_end;  // the output rows to compute, written from y on
  int64_t y_plane;           // floats between output channels in y
};

// A dense (group 1) convolution with few output channels on one image in NCHW, output pixels across
// the vector lanes: each input value loaded once serves every output channel.
struct DirectConvArgs {
  const float* x;        // [C][H][W]
  float* y;              // [M][OH][OW]
  const float* weights;  // [M][C][KH][KW] (the ONNX layout)
  const float* bias;     // [M]
  const float* slope;    // [M] PRelu slopes, or null
  Activation act;
  int64_t C, H, W, M, OH, OW, KH, KW;
  int64_t stride, pad_top, pad_left;  // stride 1 or 2, no dilation
};

// NCHW16c ("blocked"): channels in blocks of 16, the 16 channels of a pixel innermost, so one
// vector holds one pixel's channel block. Values with C % 16 == 0 may be kept in it between ops.
constexpr int64_t kChannelBlock = 16;

// A dense (group 1) convolution writing one image in NCHW16c. The input is NCHW (any C: the RGB stem)
// or NCHW16c. Each micro-tile keeps several output blocks × several output pixels in registers and
// walks taps and input channels, broadcasting one input value against 16 weights at a time.
struct BlockedConvArgs {
  const float* x;      // one image: [C][H][W], or [C/16][H][W][16] when x_blocked
  bool x_blocked;
  float* y;            // one image: [M/16][OH][OW][16] (see y_plane)
  const float* w;      // PackBlockedConvWeights: [M/16][KH][KW][C][16]
  const float* bias;   // [M]
  const float* slope;  // [M] PRelu slopes, or null
  Activation act;
  int64_t C, H, W, M, OH, OW, KH, KW;
  int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
  // Where outputs go: y_plane floats between output channel blocks, and y holds rows from y_row0 on
  // (a whole image: OH·OW·16 and 0; a band of rows in a scratch buffer: less).
  int64_t y_plane, y_row0;
  // Store with streaming (cache-bypassing) writes: y 64-byte aligned, for outputs much larger than
  // the caches.
  bool stream_out;
};

// A depthwise convolution (group = C = M) on one image in NCHW16c, one vector per output pixel.
struct BlockedDepthwiseArgs {
  const float* x;      // [C/16][H][W][16]
  float* y;            // [C/16][OH][OW][16] (see y_plane)
  const float* w;      // [C/16][KH][KW][16]
  const float* bias;   // [C]
  const float* slope;  // [C] PRelu slopes, or null
  Activation act;
  int64_t H, W, OH, OW, KH, KW;
  int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
  int64_t y_plane, y_row0;  // as in BlockedConvArgs
};

struct SimdKernels {
  const char* isa;
  int mr, nr;
  // C[MR×NR] (+)= A_panel[kc][MR] · B[kc rows, NR cols, row stride ldb]; epilogue when ep != null.
  void (*gemm_micro)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                     bool accumulate, const TileEpilogue* ep);
  // The same, with B row k at rows[k] + col (rows of a shifted-GEMM convolution).
  void (*gemm_micro_rows)(int64_t kc, const float* a, const float* const* rows, int64_t col, float* c, int64_t ldc,
                          bool accumulate, const TileEpilogue* ep);
  // Index of the first NaN or ±Inf among n floats, or −1.
  int64_t (*first_non_finite)(const float* x, int64_t n);
  // even[i] = src[2i], odd[i] = src[2i+1] for n source floats (stride-2 phase planes).
  void (*deinterleave2)(const float* src, int64_t n, float* even, float* odd);
  // Σ a[i]·b[i] over n floats (matrix-vector products of small batches).
  float (*dot)(const float* a, const float* b, int64_t n);
  // Channels [c_begin, c_end) of one image. scratch: Depthwise3x3ScratchFloats(...) floats.
  void (*depthwise3x3)(const Depthwise3x3Args& args, int64_t c_begin, int64_t c_end, float* scratch);
  int64_t (*depthwise3x3_scratch)(int64_t H, int64_t W, int64_t OH, int64_t OW, int stride);
  // Output rows [oh_begin, oh_end) of one image; scratch: conv_direct_scratch(args) floats.
  void (*conv_direct)(const DirectConvArgs& args, int64_t oh_begin, int64_t oh_end, float* scratch);
  int64_t (*conv_direct_scratch)(const DirectConvArgs& args);
  // Output channel blocks [ob_begin, ob_end) × rows [oh_begin, oh_end) × columns [ow_begin, ow_end) of one image.
  void (*conv_blocked)(const BlockedConvArgs& args, int64_t ob_begin, int64_t ob_end, int64_t oh_begin, int64_t oh_end,
                       int64_t ow_begin, int64_t ow_end);
  // Up to conv_blocked_tile_blocks output blocks × conv_blocked_tile_pixels(those blocks) pixels make
  // one micro-tile: split work in multiples.
  int conv_blocked_tile_blocks;
  int (*conv_blocked_tile_pixels)(int64_t blocks);
  // Channel blocks [cb_begin, cb_end) × output rows [oh_begin, oh_end) of one image.
  void (*depthwise_blocked)(const BlockedDepthwiseArgs& args, int64_t cb_begin, int64_t cb_end, int64_t oh_begin,
                            int64_t oh_end);
};

const SimdKernels& Kernels();

}  // namespace facesight
