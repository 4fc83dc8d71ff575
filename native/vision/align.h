// Face alignment: the 5-point similarity transform onto a template (Umeyama), the seed's eye-line
// rotation, and a batched bilinear warpAffine that cuts normalised float crops out of 8-bit frames.
//
// Matrices are 2×3, row-major, and map source → destination, as cv2.warpAffine and
// cv2.getRotationMatrix2D take them: (x', y') = (m[0]x + m[1]y + m[2], m[3]x + m[4]y + m[5]).
// Pixel coordinates follow OpenCV: integer coordinates are pixel centres.
#pragma once
#include <climits>
#include <cstdint>

#include "common/thread_pool.h"
#include "vision/image.h"

namespace facesight {

struct AffineMatrix {
  float m[6] = {1.f, 0.f, 0.f, 0.f, 1.f, 0.f};
};

// The similarity (scale, rotation, translation; no reflection) minimising Σ |dst_i − T(src_i)|² over n
// ≥ 2 points (x, y pairs): Umeyama's estimate, as skimage's SimilarityTransform. In 2-D it has a
// closed form over centred points, T = [a −b; b a] + t with a = Σ(x·u + y·v) / Σ|p|²,
// b = Σ(x·v − y·u) / Σ|p|²; computed in double. Degenerate input (all source points equal) gives a
// pure translation of the means.
AffineMatrix SimilarityTransform(const float* src_xy, const float* dst_xy, int32_t n);

// The seed's Alignment_1: the rotation about `center` that makes the eye line horizontal, as
// cv2.getRotationMatrix2D(center, angle, 1) with angle = atan2(right − left) in degrees (returned in
// *angle_degrees when not null). The seed writes atan(dy / dx); that is the same angle whenever the
// right eye is right of the left eye, while atan2 also turns an upside-down face upright.
AffineMatrix EyeLineRotation(float left_x, float left_y, float right_x, float right_y, float center_x, float center_y,
                             float* angle_degrees);

// The inverse map (computed in double); NaN entries when t is singular.
AffineMatrix InvertAffine(const AffineMatrix& t);

// out[i] = T(xy[i]) for n (x, y) points; out may be xy.
void TransformPoints(const AffineMatrix& t, const float* xy, int64_t n, float* out);

// One crop: which frame, the source → crop matrix (inverted inside, once per crop), and the source
// pixels it may read: [clip_x0, clip_x1) × [clip_y0, clip_y1), cut to the frame; pixels outside read
// the border colour (face-api pads a face box, not the frame around it).
struct WarpCrop {
  int32_t frame = 0;
  AffineMatrix matrix;
  int32_t clip_x0 = 0, clip_y0 = 0, clip_x1 = INT32_MAX, clip_y1 = INT32_MAX;
};

struct WarpParams {
  int32_t out_width = 0, out_height = 0;
  float border_rgb[3] = {0.f, 0.f, 0.f};  // constant border, pixel units, RGB
  PixelNormalization norm;
};

// out: crop_count · 3 · out_height · out_width floats (layout per norm). Bilinear sampling in float;
// a sample's neighbours outside the frame read the border colour (cv2 BORDER_CONSTANT, without its
// 1/32-pixel fixed-point grid). No scratch, no allocation.
void WarpAffineBatch(const WarpParams& params, const ImageU8* frames, const WarpCrop* crops, int64_t crop_count,
                     float* out, ThreadPool* pool);

}  // namespace facesight
