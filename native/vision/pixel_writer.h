// Internal to vision/: the per-pixel tail shared by letterbox and warpAffine — which source byte
// feeds each output channel, the normalisation folded to (v − mean) · (1/std), and where a pixel's
// three values go in NCHW or NHWC.
#pragma once
#include <cstdint>

#include "vision/image.h"

namespace facesight {
namespace vision_detail {

struct ChannelMap {
  int32_t source[3];  // byte offset inside a source pixel read by output channel c
  float mean[3];
  float inv_std[3];   // (v − mean) · inv_std: exact when std is 1, within an ulp of the division otherwise
};

inline ChannelMap MakeChannelMap(const PixelNormalization& norm, int32_t channels) {
  ChannelMap map;
  for (int c = 0; c < 3; ++c) {
    const int rgb = norm.order == ColorOrder::Rgb ? c : 2 - c;
    map.source[c] = channels >= 3 ? rgb : 0;
    map.mean[c] = norm.mean[c];
    map.inv_std[c] = 1.f / norm.std[c];
  }
  return map;
}

// A constant colour given as RGB pixel values (bars, borders), normalised into output channel order.
inline void NormalizeColor(const ChannelMap& map, const PixelNormalization& norm, const float rgb[3], float out[3]) {
  for (int c = 0; c < 3; ++c) {
    const int src = norm.order == ColorOrder::Rgb ? c : 2 - c;
    out[c] = (rgb[src] - map.mean[c]) * map.inv_std[c];
  }
}

// Writes one output image row: pixel x's channel c lands at plane[c][x] (NCHW) or row[3x + c] (NHWC).
struct RowWriter {
  float* base;           // NCHW: channel 0 of this row; NHWC: this row
  int64_t plane_stride;  // NCHW: floats between channel planes
  bool nhwc;

  void Put(int64_t x, const float v[3]) const {
    if (nhwc) {
      float* p = base + 3 * x;
      p[0] = v[0], p[1] = v[1], p[2] = v[2];
    } else {
      base[x] = v[0], base[plane_stride + x] = v[1], base[2 * plane_stride + x] = v[2];
    }
  }
  void Fill(int64_t x_begin, int64_t x_end, const float v[3]) const {
    for (int64_t x = x_begin; x < x_end; ++x) Put(x, v);
  }
};

// Row y of image n in a batch of [N, 3, H, W] (or [N, H, W, 3]) tensors.
inline RowWriter OutputRow(float* out, const PixelNormalization& norm, int64_t n, int64_t y, int64_t H, int64_t W) {
  const int64_t image = 3 * H * W;
  if (norm.layout == TensorLayout::Nhwc) return {out + n * image + y * W * 3, 0, true};
  return {out + n * image + y * W, H * W, false};
}

}  // namespace vision_detail
}  // namespace facesight
