#include "vision/letterbox.h"

#include <algorithm>
#include <cmath>

#include "vision/pixel_writer.h"

namespace facesight {
namespace {

using vision_detail::ChannelMap;
using vision_detail::RowWriter;

// Two neighbouring source samples along one axis and the weight of the second.
struct Tap {
  int32_t i0, i1;
  float w;
};

// Half-pixel mapping of content index o onto a source axis of `size` samples, edges repeated.
inline Tap SourceTap(int64_t o, double src_per_out, int32_t size) {
  double s = (static_cast<double>(o) + 0.5) * src_per_out - 0.5;
  s = std::min(std::max(s, 0.0), static_cast<double>(size - 1));
  const int32_t i0 = static_cast<int32_t>(s);  // s ≥ 0: truncation is floor
  return {i0, std::min(i0 + 1, size - 1), static_cast<float>(s - i0)};
}

// One content row. Columns carry byte offsets (i · C) so the loop does no multiplies; lerps are
// written a + w·(b − a) so weight 0 returns a exactly (an identity resize is lossless).
template <int C>
void SampleRow(const uint8_t* r0, const uint8_t* r1, float wy, const Tap* cols, int64_t n, const ChannelMap& map,
               const RowWriter& out, int64_t x_begin) {
  for (int64_t x = 0; x < n; ++x) {
    const Tap t = cols[x];
    float v[3];
    if (C == 1) {
      const float a = r0[t.i0], b = r0[t.i1], c = r1[t.i0], d = r1[t.i1];
      const float top = a + t.w * (b - a), bottom = c + t.w * (d - c), s = top + wy * (bottom - top);
      for (int k = 0; k < 3; ++k) v[k] = (s - map.mean[k]) * map.inv_std[k];
    } else {
      for (int k = 0; k < 3; ++k) {
        const int ch = map.source[k];
        const float a = r0[t.i0 + ch], b = r0[t.i1 + ch], c = r1[t.i0 + ch], d = r1[t.i1 + ch];
        const float top = a + t.w * (b - a), bottom = c + t.w * (d - c);
        v[k] = (top + wy * (bottom - top) - map.mean[k]) * map.inv_std[k];
      }
    }
    out.Put(x_begin + x, v);
  }
}

// Identity scale (the detector at the frame's own size): a straight conversion.
template <int C>
void ConvertRow(const uint8_t* row, int64_t n, const ChannelMap& map, const RowWriter& out, int64_t x_begin) {
  for (int64_t x = 0; x < n; ++x) {
    const uint8_t* p = row + x * C;
    float v[3];
    for (int k = 0; k < 3; ++k) v[k] = (static_cast<float>(p[C == 1 ? 0 : map.source[k]]) - map.mean[k]) * map.inv_std[k];
    out.Put(x_begin + x, v);
  }
}

template <int C>
void ContentRow(const ImageU8& src, const LetterboxGeometry& g, int64_t content_y, const Tap* cols,
                const ChannelMap& map, const RowWriter& out) {
  if (g.width == src.width && g.height == src.height) {
    ConvertRow<C>(src.data + content_y * src.row_stride, g.width, map, out, g.x);
    return;
  }
  const Tap row = SourceTap(content_y, static_cast<double>(src.height) / g.height, src.height);
  SampleRow<C>(src.data + row.i0 * src.row_stride, src.data + row.i1 * src.row_stride, row.w, cols, g.width, map, out,
               g.x);
}

}  // namespace

LetterboxGeometry ComputeLetterboxGeometry(const LetterboxParams& p, int32_t src_width, int32_t src_height) {
  LetterboxGeometry g;
  if (p.mode == ResizeMode::PadSquare) {
    const double side = std::max(src_width, src_height);
    g.x = g.y = 0;
    g.width = p.out_width;
    g.height = p.out_height;
    g.scale_x = static_cast<float>(std::round(src_width * p.out_width / side) / src_width);
    g.scale_y = static_cast<float>(std::round(src_height * p.out_height / side) / src_height);
    return g;
  }
  if (p.mode == ResizeMode::Stretch) {
    g.width = p.out_width, g.height = p.out_height;
  } else if (static_cast<int64_t>(p.out_width) * src_height <= static_cast<int64_t>(p.out_height) * src_width) {
    // Width is the limiting side (integer arithmetic: no 159.99999 → 159 surprises).
    g.width = p.out_width;
    g.height = static_cast<int32_t>(std::max<int64_t>(1, static_cast<int64_t>(src_height) * p.out_width / src_width));
  } else {
    g.height = p.out_height;
    g.width = static_cast<int32_t>(std::max<int64_t>(1, static_cast<int64_t>(src_width) * p.out_height / src_height));
  }
  g.x = (p.out_width - g.width) / 2;
  g.y = (p.out_height - g.height) / 2;
  g.scale_x = static_cast<float>(static_cast<double>(g.width) / src_width);
  g.scale_y = static_cast<float>(static_cast<double>(g.height) / src_height);
  return g;
}

size_t LetterboxWorkspaceSize(const LetterboxParams& p, int64_t frame_count) {
  return static_cast<size_t>(frame_count) * (sizeof(LetterboxGeometry) + static_cast<size_t>(p.out_width) * sizeof(Tap));
}

namespace {

// TensorFlow's legacy bilinear sample of one axis: source = output · scale, floor/ceil neighbours.
struct LegacyTap {
  int32_t i0, i1;
  float w;
};
inline LegacyTap LegacySourceTap(int64_t o, double scale, int32_t size) {
  const double s = static_cast<double>(o) * scale;
  const int32_t i0 = static_cast<int32_t>(s);
  return {std::min(i0, size - 1), std::min(static_cast<int32_t>(std::ceil(s)), size - 1), static_cast<float>(s - i0)};
}

// PadSquare: sample the virtual square (image at its top-left, pad_rgb elsewhere).
void PadSquareFrame(const LetterboxParams& p, const ImageU8& f, int64_t n, float* out) {
  const int64_t W = p.out_width, H = p.out_height;
  const int32_t side = std::max(f.width, f.height);
  const ChannelMap map = vision_detail::MakeChannelMap(p.norm, f.channels);
  // Pad colour in pixel units, in the order the channel map reads (so padding blends like pixels).
  auto pixel = [&](int32_t x, int32_t y, int k) -> float {
    if (x >= f.width || y >= f.height) return f.channels == 1 ? p.pad_rgb[0] : p.pad_rgb[map.source[k] < 3 ? map.source[k] : 0];
    const uint8_t* q = f.data + y * f.row_stride + static_cast<int64_t>(x) * f.channels;
    return q[f.channels == 1 ? 0 : map.source[k]];
  };
  const double sx = static_cast<double>(side) / W, sy = static_cast<double>(side) / H;
  for (int64_t y = 0; y < H; ++y) {
    const RowWriter row = vision_detail::OutputRow(out, p.norm, n, y, H, W);
    const LegacyTap ty = LegacySourceTap(y, sy, side);
    for (int64_t x = 0; x < W; ++x) {
      const LegacyTap tx = LegacySourceTap(x, sx, side);
      float v[3];
      for (int k = 0; k < 3; ++k) {
        const float a = pixel(tx.i0, ty.i0, k), b = pixel(tx.i1, ty.i0, k), c = pixel(tx.i0, ty.i1, k), d = pixel(tx.i1, ty.i1, k);
        const float top = a + (b - a) * tx.w, bottom = c + (d - c) * tx.w;
        v[k] = (top + (bottom - top) * ty.w - map.mean[k]) * map.inv_std[k];
      }
      row.Put(x, v);
    }
  }
}

}  // namespace

void Letterbox(const LetterboxParams& p, const ImageU8* frames, int64_t frame_count, float* out,
               LetterboxGeometry* geometry, void* workspace, ThreadPool* pool) {
  const int64_t W = p.out_width, H = p.out_height;
  if (p.mode == ResizeMode::PadSquare) {
    for (int64_t n = 0; n < frame_count; ++n)
      if (geometry) geometry[n] = ComputeLetterboxGeometry(p, frames[n].width, frames[n].height);
    ParallelFor(pool, frame_count, 1, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) PadSquareFrame(p, frames[n], n, out);
    });
    (void)workspace;
    return;
  }
  // Workspace: each frame's geometry, then its column taps (byte offsets into a source row).
  auto* plans = static_cast<LetterboxGeometry*>(workspace);
  Tap* all_cols = reinterpret_cast<Tap*>(plans + frame_count);
  for (int64_t n = 0; n < frame_count; ++n) {
    const ImageU8& f = frames[n];
    const LetterboxGeometry g = ComputeLetterboxGeometry(p, f.width, f.height);
    plans[n] = g;
    if (geometry) geometry[n] = g;
    Tap* cols = all_cols + n * W;
    const double src_per_out = static_cast<double>(f.width) / g.width;
    for (int64_t x = 0; x < g.width; ++x) {
      Tap t = SourceTap(x, src_per_out, f.width);
      cols[x] = {t.i0 * f.channels, t.i1 * f.channels, t.w};
    }
  }
  ParallelFor(pool, frame_count * H, std::max<int64_t>(1, 8192 / std::max<int64_t>(W, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / H, y = r % H;
      const ImageU8& f = frames[n];
      const LetterboxGeometry& g = plans[n];
      const ChannelMap map = vision_detail::MakeChannelMap(p.norm, f.channels);
      float pad[3];
      vision_detail::NormalizeColor(map, p.norm, p.pad_rgb, pad);
      const RowWriter row = vision_detail::OutputRow(out, p.norm, n, y, H, W);
      if (y < g.y || y >= g.y + g.height) {
        row.Fill(0, W, pad);
        continue;
      }
      row.Fill(0, g.x, pad);
      row.Fill(g.x + g.width, W, pad);
      const Tap* cols = all_cols + n * W;
      switch (f.channels) {
        case 1: ContentRow<1>(f, g, y - g.y, cols, map, row); break;
        case 3: ContentRow<3>(f, g, y - g.y, cols, map, row); break;
        default: ContentRow<4>(f, g, y - g.y, cols, map, row); break;
      }
    }
  });
}

void MapToSource(const LetterboxGeometry& g, float* xy, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    xy[2 * i] = (xy[2 * i] - g.x) / g.scale_x;
    xy[2 * i + 1] = (xy[2 * i + 1] - g.y) / g.scale_y;
  }
}

}  // namespace facesight
