// The source → crop matrices of face alignment, as inline functions that compile for the host and
// for CUDA devices alike: the CPU pipeline (face_pipeline.cpp, align.cpp) and the CUDA pipeline
// (cuda_face_pipeline.cu, which computes each face's matrix on the device from the detector's
// landmarks) run this one arithmetic, so both cut the same crops. All in double, rounded once.
#pragma once
#include <cmath>
#include <cstdint>

#include "vision/align.h"

#if defined(__CUDACC__)
#define FACESIGHT_HOST_DEVICE __host__ __device__
#else
#define FACESIGHT_HOST_DEVICE
#endif

namespace facesight {

enum class AlignmentKind : uint8_t {
  None,        // the box, centred in a square, scaled to the input
  EyeLine,     // the same square turned about the box centre so that the eyes are level (the seed)
  Similarity,  // the similarity transform of the landmarks onto a template (least squares)
};

// SimilarityTransform (align.h): Umeyama's least-squares similarity of n ≥ 2 points src → dst.
FACESIGHT_HOST_DEVICE inline AffineMatrix FitSimilarity(const float* src, const float* dst, int32_t n) {
  double sx = 0, sy = 0, dx = 0, dy = 0;
  for (int32_t i = 0; i < n; ++i) sx += src[2 * i], sy += src[2 * i + 1], dx += dst[2 * i], dy += dst[2 * i + 1];
  sx /= n, sy /= n, dx /= n, dy /= n;
  double norm = 0, dot = 0, cross = 0;
  for (int32_t i = 0; i < n; ++i) {
    const double x = src[2 * i] - sx, y = src[2 * i + 1] - sy, u = dst[2 * i] - dx, v = dst[2 * i + 1] - dy;
    norm += x * x + y * y;
    dot += x * u + y * v;
    cross += x * v - y * u;
  }
  const double a = norm > 0 ? dot / norm : 0, b = norm > 0 ? cross / norm : 0;
  AffineMatrix t;
  t.m[0] = static_cast<float>(a), t.m[1] = static_cast<float>(-b), t.m[2] = static_cast<float>(dx - (a * sx - b * sy));
  t.m[3] = static_cast<float>(b), t.m[4] = static_cast<float>(a), t.m[5] = static_cast<float>(dy - (b * sx + a * sy));
  return t;
}

// The eye line's angle (radians, atan2 of right eye − left eye) from five points (left eye, right eye, …),
// in float as the pipeline has always computed it.
FACESIGHT_HOST_DEVICE inline double EyeLineAngle(const float* five) { return ::atan2f(five[3] - five[1], five[2] - five[0]); }

// The box (x1, y1, x2, y2) centred in a square of its longer side, scaled to fit a width × height
// input and turned by −angle about its centre (AlignmentKind None: angle 0; EyeLine: the eye line's).
FACESIGHT_HOST_DEVICE inline AffineMatrix BoxSquareCrop(const float* box, double angle, int32_t width, int32_t height) {
  const double bw = box[2] - box[0], bh = box[3] - box[1];
  const double side = bw < bh ? bh : bw;
  const double cx = (box[0] + box[2]) / 2.0, cy = (box[1] + box[3]) / 2.0;
  const double k = side > 0 ? (width < height ? width : height) / side : 1;
  const double c = ::cos(angle) * k, s = ::sin(angle) * k;
  // u = k · R(−angle)(x + 0.5 − centre) + size / 2 − 0.5 (pixel centres at integers)
  const double tx = width / 2.0 - 0.5, ty = height / 2.0 - 0.5;
  const double px = 0.5 - cx, py = 0.5 - cy;
  AffineMatrix m;
  m.m[0] = static_cast<float>(c);
  m.m[1] = static_cast<float>(s);
  m.m[2] = static_cast<float>(c * px + s * py + tx);
  m.m[3] = static_cast<float>(-s);
  m.m[4] = static_cast<float>(c);
  m.m[5] = static_cast<float>(-s * px + c * py + ty);
  return m;
}

// The embedder's crop for one face. landmarks: the points the template stands for (template_points
// (x, y) pairs), or null when the face has none (then Similarity falls back to the box square);
// five: the five points for EyeLine, or null.
FACESIGHT_HOST_DEVICE inline AffineMatrix EmbedderCrop(AlignmentKind kind, const float* box, const float* landmarks,
                                                       const float* five, const float* template_xy,
                                                       int32_t template_points, int32_t width, int32_t height) {
  if (kind == AlignmentKind::Similarity && landmarks) return FitSimilarity(landmarks, template_xy, template_points);
  const double angle = kind == AlignmentKind::EyeLine && five ? EyeLineAngle(five) : 0;
  return BoxSquareCrop(box, angle, width, height);
}

// The mirror image of a crop: u → (width − 1) − u after the matrix (test-time flip).
FACESIGHT_HOST_DEVICE inline AffineMatrix MirroredCrop(const AffineMatrix& crop, int32_t width) {
  AffineMatrix m = crop;
  for (int k = 0; k < 3; ++k) m.m[k] = -crop.m[k];
  m.m[2] += static_cast<float>(width - 1);
  return m;
}

}  // namespace facesight
