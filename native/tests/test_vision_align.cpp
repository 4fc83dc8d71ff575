// Alignment: the similarity estimate recovers known similarities from noiseless points (1e-4) and
// equals the least-squares solution of the normal equations with noise (1e-4 relative); the eye-line
// rotation levels the eyes and undoes a known rotation (1e-3 px); warpAffine with the identity
// reproduces the image exactly and matches a plain bilinear reference with constant borders for
// random matrices (2e-3 pixel units / std).
#include <algorithm>
#include <cmath>

#include "test_util.h"
#include "vision/align.h"

using namespace facesight;
using namespace facesight_test;

static const double kPi = 3.14159265358979323846;

// ---- similarity ----

// Least squares over (a, b, tx, ty) with u = a·x − b·y + tx, v = b·x + a·y + ty: 4×4 normal equations
// solved by Gaussian elimination.
static void ReferenceSimilarity(const std::vector<float>& src, const std::vector<float>& dst, double out[4]) {
  double ata[4][5] = {};
  const int n = static_cast<int>(src.size() / 2);
  for (int i = 0; i < n; ++i) {
    const double x = src[2 * i], y = src[2 * i + 1];
    const double rows[2][5] = {{x, -y, 1, 0, dst[2 * i]}, {y, x, 0, 1, dst[2 * i + 1]}};
    for (const auto& r : rows)
      for (int j = 0; j < 4; ++j)
        for (int k = 0; k < 5; ++k) ata[j][k] += r[j] * r[k];
  }
  for (int c = 0; c < 4; ++c) {
    int pivot = c;
    for (int r = c + 1; r < 4; ++r)
      if (std::fabs(ata[r][c]) > std::fabs(ata[pivot][c])) pivot = r;
    for (int k = 0; k < 5; ++k) std::swap(ata[c][k], ata[pivot][k]);
    for (int r = 0; r < 4; ++r)
      if (r != c) {
        const double f = ata[r][c] / ata[c][c];
        for (int k = 0; k < 5; ++k) ata[r][k] -= f * ata[c][k];
      }
  }
  for (int j = 0; j < 4; ++j) out[j] = ata[j][4] / ata[j][j];
}

static void CheckSimilarity() {
  std::mt19937 rng(3);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 2 + trial % 7;  // 2 .. 8 points
    const double s = 0.3 + 2 * unit(rng), theta = (2 * unit(rng) - 1) * kPi;
    const double tx = 200 * unit(rng) - 100, ty = 200 * unit(rng) - 100;
    const double a = s * std::cos(theta), b = s * std::sin(theta);
    std::vector<float> src(2 * n), dst(2 * n), noisy(2 * n);
    for (int i = 0; i < n; ++i) {
      const double x = 250 * unit(rng), y = 250 * unit(rng);
      src[2 * i] = static_cast<float>(x), src[2 * i + 1] = static_cast<float>(y);
      const double u = a * src[2 * i] - b * src[2 * i + 1] + tx, v = b * src[2 * i] + a * src[2 * i + 1] + ty;
      dst[2 * i] = static_cast<float>(u), dst[2 * i + 1] = static_cast<float>(v);
      noisy[2 * i] = static_cast<float>(u + 3 * (unit(rng) - 0.5));
      noisy[2 * i + 1] = static_cast<float>(v + 3 * (unit(rng) - 0.5));
    }
    // Noiseless: the transform itself (2 points determine it).
    const AffineMatrix t = SimilarityTransform(src.data(), dst.data(), n);
    const double want[6] = {a, -b, tx, b, a, ty};
    double err = 0;
    for (int k = 0; k < 6; ++k)  // translations relative to their size
      err = std::max(err, std::fabs(t.m[k] - want[k]) / (k % 3 == 2 ? std::max(1.0, std::fabs(want[k])) : 1.0));
    CHECK(err < 1e-4, "trial %d (n=%d): noiseless error %g", trial, n, err);
    // Noisy: the least-squares similarity.
    if (n < 3) continue;
    const AffineMatrix tn = SimilarityTransform(src.data(), noisy.data(), n);
    double ls[4];
    ReferenceSimilarity(src, noisy, ls);
    const double got[4] = {tn.m[0], tn.m[3], tn.m[2], tn.m[5]};
    err = 0;
    for (int k = 0; k < 4; ++k) err = std::max(err, std::fabs(got[k] - ls[k]) / (k < 2 ? 1.0 : std::max(1.0, std::fabs(ls[k]))));
    CHECK(err < 1e-4 && tn.m[1] == -tn.m[3] && tn.m[0] == tn.m[4], "trial %d (n=%d): least squares error %g", trial, n, err);
  }
  // A mirrored point set: no reflection comes back (det > 0), and it is still the best similarity.
  const std::vector<float> src = {30, 50, 66, 51, 48, 72, 33, 92, 63, 92};
  std::vector<float> mirrored(src);
  for (size_t i = 0; i < src.size(); i += 2) mirrored[i] = 100 - src[i];
  const AffineMatrix t = SimilarityTransform(src.data(), mirrored.data(), 5);
  double ls[4];
  ReferenceSimilarity(src, mirrored, ls);
  CHECK(t.m[0] * t.m[4] - t.m[1] * t.m[3] >= 0 && std::fabs(t.m[0] - ls[0]) < 1e-4 && std::fabs(t.m[3] - ls[1]) < 1e-4,
        "mirror: det %g", t.m[0] * t.m[4] - t.m[1] * t.m[3]);
  // Degenerate source (one point repeated): the translation of the means.
  const std::vector<float> same = {5, 5, 5, 5};
  const std::vector<float> to = {1, 2, 3, 4};
  const AffineMatrix d = SimilarityTransform(same.data(), to.data(), 2);
  CHECK(d.m[0] == 0 && d.m[1] == 0 && d.m[2] == 2 && d.m[5] == 3, "degenerate: %g %g %g %g", d.m[0], d.m[1], d.m[2], d.m[5]);
}

// ---- eye line ----

static void CheckEyeLine() {
  // An upright face (image coordinates, y down): left eye, right eye, nose, mouth corners.
  const float face[10] = {200, 180, 260, 180, 230, 215, 207, 245, 253, 245};
  const float cx = 240, cy = 210;  // rotation centre (the seed uses the image centre)
  for (double deg : {-170.0, -89.0, -45.0, -10.0, 0.0, 3.0, 30.0, 60.0, 89.0, 135.0}) {
    const double r = deg * kPi / 180, c = std::cos(r), s = std::sin(r);
    float rotated[10];
    for (int i = 0; i < 5; ++i) {  // turn the face by deg on screen (the eye vector's atan2 becomes deg)
      const double x = face[2 * i] - cx, y = face[2 * i + 1] - cy;
      rotated[2 * i] = static_cast<float>(cx + c * x - s * y), rotated[2 * i + 1] = static_cast<float>(cy + s * x + c * y);
    }
    float angle;
    const AffineMatrix m = EyeLineRotation(rotated[0], rotated[1], rotated[2], rotated[3], cx, cy, &angle);
    CHECK(std::fabs(angle - deg) < 1e-3, "angle %g for %g", angle, deg);
    float back[10];
    TransformPoints(m, rotated, 5, back);
    double err = 0;
    for (int k = 0; k < 10; ++k) err = std::max(err, static_cast<double>(std::fabs(back[k] - face[k])));
    CHECK(err < 1e-3, "rotation %g not undone: %g px", deg, err);
    CHECK(std::fabs(back[1] - back[3]) < 1e-3 && back[2] > back[0], "eyes not level at %g", deg);
    // The seed's formula: atan(y / x) of (left − right), the same angle while |angle| < 90°.
    if (std::fabs(deg) < 90) {
      const double x = rotated[0] - rotated[2], y = rotated[1] - rotated[3];
      CHECK(std::fabs(std::atan(y / x) * 180 / kPi - angle) < 1e-3, "seed angle differs at %g", deg);
    }
    // cv2.getRotationMatrix2D(center, angle, 1), written out.
    const double a = std::cos(angle * kPi / 180), b = std::sin(angle * kPi / 180);
    const double cv[6] = {a, b, (1 - a) * cx - b * cy, -b, a, b * cx + (1 - a) * cy};
    for (int k = 0; k < 6; ++k) CHECK(std::fabs(m.m[k] - cv[k]) < 1e-3, "matrix[%d] at %g: %g vs %g", k, deg, m.m[k], cv[k]);
    // InvertAffine + TransformPoints round trip.
    float again[10];
    TransformPoints(InvertAffine(m), back, 5, again);
    err = 0;
    for (int k = 0; k < 10; ++k) err = std::max(err, static_cast<double>(std::fabs(again[k] - rotated[k])));
    CHECK(err < 1e-3, "inverse round trip %g", err);
  }
}

// ---- warpAffine ----

struct Frame {
  std::vector<uint8_t> bytes;
  ImageU8 view;
};

static Frame RandomFrame(int w, int h, int channels, int pad, uint32_t seed) {
  Frame f;
  const int64_t stride = static_cast<int64_t>(w) * channels + pad;
  f.bytes.resize(stride * h);
  std::mt19937 rng(seed);
  for (auto& b : f.bytes) b = static_cast<uint8_t>(rng());
  f.view = ImageU8{f.bytes.data(), w, h, channels, stride};
  return f;
}

// One crop, NCHW: dst (x, y) reads the frame at M⁻¹(x, y) (double), bilinear, neighbours outside the
// frame or the crop's clip rectangle are the border colour.
static std::vector<float> ReferenceWarp(const WarpParams& p, const ImageU8& f, const WarpCrop& crop) {
  const AffineMatrix& m = crop.matrix;
  const double a = m.m[0], b = m.m[1], c = m.m[2], d = m.m[3], e = m.m[4], g = m.m[5], det = a * e - b * d;
  const double ia = e / det, ib = -b / det, id = -d / det, ie = a / det;
  const int W = p.out_width, H = p.out_height;
  std::vector<float> out(3 * W * H);
  for (int ch = 0; ch < 3; ++ch) {
    const int rgb = p.norm.order == ColorOrder::Rgb ? ch : 2 - ch;
    const int src = f.channels == 1 ? 0 : rgb;
    auto px = [&](int64_t x, int64_t y) -> double {
      if (x < 0 || y < 0 || x >= f.width || y >= f.height) return p.border_rgb[rgb];
      if (x < crop.clip_x0 || y < crop.clip_y0 || x >= crop.clip_x1 || y >= crop.clip_y1) return p.border_rgb[rgb];
      return f.data[y * f.row_stride + x * f.channels + src];
    };
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const double sx = ia * (x - c) + ib * (y - g), sy = id * (x - c) + ie * (y - g);
        const int64_t x0 = static_cast<int64_t>(std::floor(sx)), y0 = static_cast<int64_t>(std::floor(sy));
        const double wx = sx - x0, wy = sy - y0;
        const double v = (1 - wy) * ((1 - wx) * px(x0, y0) + wx * px(x0 + 1, y0)) +
                         wy * ((1 - wx) * px(x0, y0 + 1) + wx * px(x0 + 1, y0 + 1));
        out[(ch * H + y) * W + x] = static_cast<float>((v - p.norm.mean[ch]) / p.norm.std[ch]);
      }
  }
  return out;
}

static void CheckWarp(ThreadPool* pool) {
  // Identity: the crop is the image, bit for bit.
  for (int channels : {1, 3, 4})
    for (TensorLayout layout : {TensorLayout::Nchw, TensorLayout::Nhwc}) {
      Frame f = RandomFrame(41, 29, channels, 3, 50 + channels);
      WarpParams p;
      p.out_width = 41, p.out_height = 29, p.norm.layout = layout;
      WarpCrop crop;
      std::vector<float> out(3 * 41 * 29);
      WarpAffineBatch(p, &f.view, &crop, 1, out.data(), pool);
      bool exact = true;
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 29; ++y)
          for (int x = 0; x < 41; ++x) {
            const float got = layout == TensorLayout::Nchw ? out[(c * 29 + y) * 41 + x] : out[(y * 41 + x) * 3 + c];
            exact &= got == f.bytes[y * f.view.row_stride + x * channels + (channels == 1 ? 0 : c)];
          }
      CHECK(exact, "identity warp, %d channels, layout %d", channels, static_cast<int>(layout));
    }

  // Random similarities and general affine maps, several frames per batch, borders included.
  std::vector<Frame> frames;
  frames.push_back(RandomFrame(1, 1, 3, 0, 61));
  frames.push_back(RandomFrame(120, 90, 3, 4, 62));
  frames.push_back(RandomFrame(57, 200, 1, 0, 63));
  frames.push_back(RandomFrame(640, 48, 4, 8, 64));
  std::vector<ImageU8> views;
  for (auto& f : frames) views.push_back(f.view);
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> unit(0, 1);
  for (int variant = 0; variant < 4; ++variant) {
    WarpParams p;
    p.out_width = variant & 1 ? 96 : 112, p.out_height = 112;
    p.norm.order = variant & 1 ? ColorOrder::Bgr : ColorOrder::Rgb;
    p.norm.layout = variant & 2 ? TensorLayout::Nhwc : TensorLayout::Nchw;
    p.border_rgb[0] = 10, p.border_rgb[1] = 200, p.border_rgb[2] = 77;
    if (variant >= 2) {
      const float mean[3] = {127.5f, 127.5f, 127.5f}, std[3] = {128, 128, 128};
      std::copy(mean, mean + 3, p.norm.mean), std::copy(std, std + 3, p.norm.std);
    }
    std::vector<WarpCrop> crops;
    for (int i = 0; i < 12; ++i) {
      WarpCrop c;
      c.frame = i % static_cast<int>(frames.size());
      const ImageU8& f = views[c.frame];
      if (i % 3 == 2) {  // a general affine map (shear, unequal scales)
        for (int k = 0; k < 6; ++k) c.matrix.m[k] = static_cast<float>(k % 3 == 2 ? 100 * unit(rng) - 50 : 3 * unit(rng) - 1.5);
      } else {           // a similarity that puts some of the frame in the crop
        const double s = (0.2 + 2 * unit(rng)) * 112 / std::max(f.width, f.height), th = (2 * unit(rng) - 1) * kPi;
        const double a = s * std::cos(th), b = s * std::sin(th);
        const double fx = f.width * unit(rng), fy = f.height * unit(rng);  // this frame point lands mid-crop
        c.matrix = AffineMatrix{{static_cast<float>(a), static_cast<float>(-b), static_cast<float>(56 - a * fx + b * fy),
                                 static_cast<float>(b), static_cast<float>(a), static_cast<float>(56 - b * fx - a * fy)}};
      }
      if (i % 4 == 1) {  // a clip rectangle, partly outside the frame (face-api pads a face box)
        c.clip_x0 = static_cast<int32_t>(f.width * unit(rng)) - 3;
        c.clip_y0 = static_cast<int32_t>(f.height * unit(rng)) - 3;
        c.clip_x1 = c.clip_x0 + 1 + static_cast<int32_t>(f.width * unit(rng));
        c.clip_y1 = c.clip_y0 + 1 + static_cast<int32_t>(f.height * unit(rng));
      }
      crops.push_back(c);
    }
    const int64_t image = 3 * p.out_width * p.out_height;
    std::vector<float> out(crops.size() * image, -999.f);
    WarpAffineBatch(p, views.data(), crops.data(), crops.size(), out.data(), pool);
    for (size_t i = 0; i < crops.size(); ++i) {
      const auto ref = ReferenceWarp(p, views[crops[i].frame], crops[i]);
      std::vector<float> got(image);
      const float* o = out.data() + i * image;
      const int64_t plane = p.out_width * p.out_height;
      for (int c = 0; c < 3; ++c)
        for (int64_t j = 0; j < plane; ++j)
          got[c * plane + j] = p.norm.layout == TensorLayout::Nchw ? o[c * plane + j] : o[j * 3 + c];
      const double r = ToleranceRatio(got.data(), ref.data(), ref.size(), 1e-6, 2e-3 / p.norm.std[0]);
      CHECK(r <= 1, "warp variant %d crop %zu (frame %d): ratio %g", variant, i, crops[i].frame, r);
    }
  }

  // An integer translation shifts the image and fills the rest with the border.
  Frame f = RandomFrame(20, 10, 3, 0, 70);
  WarpParams p;
  p.out_width = 20, p.out_height = 10;
  p.border_rgb[0] = 1, p.border_rgb[1] = 2, p.border_rgb[2] = 3;
  WarpCrop crop;
  crop.matrix = AffineMatrix{{1, 0, 5, 0, 1, -2}};
  std::vector<float> out(600);
  WarpAffineBatch(p, &f.view, &crop, 1, out.data(), pool);
  bool ok = true;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 10; ++y)
      for (int x = 0; x < 20; ++x) {
        const int sx = x - 5, sy = y + 2;
        const float want = (sx < 0 || sy >= 10) ? static_cast<float>(c + 1) : f.bytes[sy * 60 + sx * 3 + c];
        ok &= out[(c * 10 + y) * 20 + x] == want;
      }
  CHECK(ok, "integer translation");
}

int main() {
  ThreadPool pool(2);
  CheckSimilarity();
  CheckEyeLine();
  CheckWarp(nullptr);
  CheckWarp(&pool);
  return Finish("test_vision_align");
}
