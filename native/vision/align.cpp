#include "vision/align.h"

#include <algorithm>
#include <cmath>

#include "vision/align_matrices.h"
#include "vision/pixel_writer.h"

namespace facesight {

AffineMatrix SimilarityTransform(const float* src, const float* dst, int32_t n) { return FitSimilarity(src, dst, n); }

AffineMatrix EyeLineRotation(float left_x, float left_y, float right_x, float right_y, float center_x, float center_y,
                             float* angle_degrees) {
  const double angle = std::atan2(static_cast<double>(right_y) - left_y, static_cast<double>(right_x) - left_x);
  if (angle_degrees) *angle_degrees = static_cast<float>(angle * (180.0 / 3.14159265358979323846));
  // cv2.getRotationMatrix2D: a counter-clockwise turn on screen (y down) by `angle`, about the centre.
  const double c = std::cos(angle), s = std::sin(angle);
  AffineMatrix t;
  t.m[0] = static_cast<float>(c), t.m[1] = static_cast<float>(s), t.m[2] = static_cast<float>((1 - c) * center_x - s * center_y);
  t.m[3] = static_cast<float>(-s), t.m[4] = static_cast<float>(c), t.m[5] = static_cast<float>(s * center_x + (1 - c) * center_y);
  return t;
}

// The inverse in double; NaN when singular (a warp then reads only the border).
static void InvertToDouble(const AffineMatrix& t, double inv[6]) {
  const double a = t.m[0], b = t.m[1], c = t.m[2], d = t.m[3], e = t.m[4], f = t.m[5];
  const double det = a * e - b * d;
  const double k = det != 0 ? 1.0 / det : std::nan("");
  inv[0] = e * k, inv[1] = -b * k, inv[2] = (b * f - e * c) * k;
  inv[3] = -d * k, inv[4] = a * k, inv[5] = (d * c - a * f) * k;
}

AffineMatrix InvertAffine(const AffineMatrix& t) {
  double inv[6];
  InvertToDouble(t, inv);
  AffineMatrix r;
  for (int i = 0; i < 6; ++i) r.m[i] = static_cast<float>(inv[i]);
  return r;
}

void TransformPoints(const AffineMatrix& t, const float* xy, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = xy[2 * i], y = xy[2 * i + 1];
    out[2 * i] = t.m[0] * x + t.m[1] * y + t.m[2];
    out[2 * i + 1] = t.m[3] * x + t.m[4] * y + t.m[5];
  }
}

namespace {

using vision_detail::ChannelMap;
using vision_detail::RowWriter;

// One output row of one crop. The source position is stepped in double (a frame thousands of pixels
// wide would otherwise drift by tenths of a pixel over a row); interior samples take the fast path,
// samples whose neighbours leave the frame read the border colour for those neighbours.
template <int C>
void WarpRow(const ImageU8& src, const WarpCrop& crop, const double inv[6], int64_t y, int64_t width,
             const ChannelMap& map, const float border[3], const float border_out[3], const RowWriter& out) {
  const double row_x = inv[1] * y + inv[2], row_y = inv[4] * y + inv[5];
  // The readable window: the frame, cut to the crop's clip rectangle.
  const int64_t X0 = std::max<int64_t>(0, crop.clip_x0), Y0 = std::max<int64_t>(0, crop.clip_y0);
  const int64_t W = std::min<int64_t>(src.width, crop.clip_x1), H = std::min<int64_t>(src.height, crop.clip_y1);
  for (int64_t x = 0; x < width; ++x) {
    const double sx = row_x + inv[0] * x, sy = row_y + inv[3] * x;
    if (!(sx >= X0 - 1 && sx < W && sy >= Y0 - 1 && sy < H)) {  // no neighbour inside (also catches NaN)
      out.Put(x, border_out);
      continue;
    }
    // floor by truncation of a non-negative value (std::floor is a libm call on baseline x86-64)
    const int64_t x0 = static_cast<int64_t>(sx + 1) - 1, y0 = static_cast<int64_t>(sy + 1) - 1;
    const float wx = static_cast<float>(sx - x0), wy = static_cast<float>(sy - y0);
    const uint8_t* r0 = src.data + y0 * src.row_stride + x0 * C;
    const uint8_t* r1 = r0 + src.row_stride;
    float v[3];
    if (x0 >= X0 && x0 + 1 < W && y0 >= Y0 && y0 + 1 < H) {
      for (int k = 0; k < 3; ++k) {
        const int ch = C == 1 ? 0 : map.source[k];
        const float a = r0[ch], b = r0[C + ch], c = r1[ch], d = r1[C + ch];
        const float top = a + wx * (b - a), bottom = c + wx * (d - c);
        v[k] = (top + wy * (bottom - top) - map.mean[k]) * map.inv_std[k];
      }
    } else {
      const bool in_x0 = x0 >= X0, in_x1 = x0 + 1 < W && x0 + 1 >= X0, in_y0 = y0 >= Y0, in_y1 = y0 + 1 < H && y0 + 1 >= Y0;
      for (int k = 0; k < 3; ++k) {
        const int ch = C == 1 ? 0 : map.source[k];
        const float a = in_y0 && in_x0 ? r0[ch] : border[k];
        const float b = in_y0 && in_x1 ? r0[C + ch] : border[k];
        const float c = in_y1 && in_x0 ? r1[ch] : border[k];
        const float d = in_y1 && in_x1 ? r1[C + ch] : border[k];
        const float top = a + wx * (b - a), bottom = c + wx * (d - c);
        v[k] = (top + wy * (bottom - top) - map.mean[k]) * map.inv_std[k];
      }
    }
    out.Put(x, v);
  }
}

}  // namespace

void WarpAffineBatch(const WarpParams& p, const ImageU8* frames, const WarpCrop* crops, int64_t crop_count, float* out,
                     ThreadPool* pool) {
  const int64_t W = p.out_width, H = p.out_height;
  ParallelFor(pool, crop_count * H, std::max<int64_t>(1, 4096 / std::max<int64_t>(W, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / H, y = r % H;
      const WarpCrop& crop = crops[n];
      const ImageU8& f = frames[crop.frame];
      double inv[6];  // crop → frame
      InvertToDouble(crop.matrix, inv);
      const ChannelMap map = vision_detail::MakeChannelMap(p.norm, f.channels);
      float border[3], border_out[3];  // in output channel order: raw pixel units, then normalised
      for (int ch = 0; ch < 3; ++ch) border[ch] = p.border_rgb[p.norm.order == ColorOrder::Rgb ? ch : 2 - ch];
      vision_detail::NormalizeColor(map, p.norm, p.border_rgb, border_out);
      const RowWriter row = vision_detail::OutputRow(out, p.norm, n, y, H, W);
      switch (f.channels) {
        case 1: WarpRow<1>(f, crop, inv, y, W, map, border, border_out, row); break;
        case 3: WarpRow<3>(f, crop, inv, y, W, map, border, border_out, row); break;
        default: WarpRow<4>(f, crop, inv, y, W, map, border, border_out, row); break;
      }
    }
  });
}

}  // namespace facesight
