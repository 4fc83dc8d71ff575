// Letterbox / stretch resize + normalisation against a plain per-pixel bilinear reference (double),
// over frame sizes (1×1 to 3000×17), grey / RGB / RGBA, padded rows, both layouts and colour orders,
// batches of mixed sizes, with and without threads. Tolerance: 2e-3 pixel units (float lerps of 8-bit
// values are good to ~1e-4), divided by std; identity resizes must be exact.
#include <algorithm>
#include <cstring>

#include "test_util.h"
#include "vision/letterbox.h"

using namespace facesight;
using namespace facesight_test;

struct Frame {
  std::vector<uint8_t> bytes;
  ImageU8 view;
};

static Frame RandomFrame(int w, int h, int channels, int stride_pad, uint32_t seed) {
  Frame f;
  const int64_t stride = static_cast<int64_t>(w) * channels + stride_pad;
  f.bytes.resize(stride * h);
  std::mt19937 rng(seed);
  for (auto& b : f.bytes) b = static_cast<uint8_t>(rng());
  f.view = ImageU8{f.bytes.data(), w, h, channels, stride};
  return f;
}

// The geometry written out from its definition.
static LetterboxGeometry ReferenceGeometry(const LetterboxParams& p, int iw, int ih) {
  LetterboxGeometry g;
  if (p.mode == ResizeMode::Stretch) {
    g.width = p.out_width, g.height = p.out_height;
  } else if (static_cast<double>(p.out_width) / iw <= static_cast<double>(p.out_height) / ih) {
    g.width = p.out_width, g.height = std::max(1, static_cast<int>(static_cast<int64_t>(ih) * p.out_width / iw));
  } else {
    g.height = p.out_height, g.width = std::max(1, static_cast<int>(static_cast<int64_t>(iw) * p.out_height / ih));
  }
  g.x = (p.out_width - g.width) / 2, g.y = (p.out_height - g.height) / 2;
  return g;
}

// out[c][y][x] (NCHW) for one frame: bilinear, half-pixel centres, clamped edges, then (v − mean) / std.
static std::vector<float> ReferenceLetterbox(const LetterboxParams& p, const ImageU8& f) {
  const int W = p.out_width, H = p.out_height;
  const LetterboxGeometry g = ReferenceGeometry(p, f.width, f.height);
  std::vector<float> out(3 * W * H);
  for (int c = 0; c < 3; ++c) {
    const int rgb = p.norm.order == ColorOrder::Rgb ? c : 2 - c;
    const int ch = f.channels == 1 ? 0 : rgb;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        double v;
        if (x < g.x || x >= g.x + g.width || y < g.y || y >= g.y + g.height) {
          v = p.pad_rgb[rgb];
        } else {
          double sx = (x - g.x + 0.5) * f.width / g.width - 0.5, sy = (y - g.y + 0.5) * f.height / g.height - 0.5;
          sx = std::min(std::max(sx, 0.0), f.width - 1.0), sy = std::min(std::max(sy, 0.0), f.height - 1.0);
          const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
          const int x1 = std::min(x0 + 1, f.width - 1), y1 = std::min(y0 + 1, f.height - 1);
          const double wx = sx - x0, wy = sy - y0;
          auto px = [&](int xx, int yy) { return static_cast<double>(f.data[yy * f.row_stride + xx * f.channels + ch]); };
          v = (1 - wy) * ((1 - wx) * px(x0, y0) + wx * px(x1, y0)) + wy * ((1 - wx) * px(x0, y1) + wx * px(x1, y1));
        }
        out[(c * H + y) * W + x] = static_cast<float>((v - p.norm.mean[c]) / p.norm.std[c]);
      }
  }
  return out;
}

static std::vector<float> ToNchw(const float* t, bool nhwc, int H, int W) {
  std::vector<float> out(3 * H * W);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < H * W; ++i) out[c * H * W + i] = nhwc ? t[i * 3 + c] : t[c * H * W + i];
  return out;
}

static void Run(const LetterboxParams& p, const std::vector<const Frame*>& frames, ThreadPool* pool,
                std::vector<float>* out, std::vector<LetterboxGeometry>* geometry) {
  std::vector<ImageU8> views;
  for (auto* f : frames) views.push_back(f->view);
  std::vector<uint32_t> ws((LetterboxWorkspaceSize(p, views.size()) + 3) / 4);
  out->assign(views.size() * 3 * p.out_width * p.out_height, -12345.f);
  geometry->resize(views.size());
  Letterbox(p, views.data(), views.size(), out->data(), geometry->data(), ws.data(), pool);
}

static void CheckAgainstReference(ThreadPool* pool) {
  const int sizes[][2] = {{1, 1}, {2, 3}, {17, 5}, {64, 48}, {3000, 17}, {17, 300}, {333, 199}, {160, 160}, {80, 80}, {320, 90}};
  const int outs[][2] = {{160, 160}, {96, 112}, {33, 17}};
  uint32_t seed = 1;
  int cases = 0;
  for (const auto& o : outs)
    for (ResizeMode mode : {ResizeMode::Letterbox, ResizeMode::Stretch})
      for (int variant = 0; variant < 4; ++variant) {
        LetterboxParams p;
        p.out_width = o[0], p.out_height = o[1];
        p.mode = mode;
        p.norm.order = variant & 1 ? ColorOrder::Bgr : ColorOrder::Rgb;
        p.norm.layout = variant & 2 ? TensorLayout::Nhwc : TensorLayout::Nchw;
        if (variant >= 2) {
          const float mean[3] = {104, 117, 123}, std[3] = {58.4f, 57.1f, 57.4f}, pad[3] = {0, 255, 7};
          std::copy(mean, mean + 3, p.norm.mean), std::copy(std, std + 3, p.norm.std), std::copy(pad, pad + 3, p.pad_rgb);
        }
        // One batch: every frame size, cycling through grey / RGB / RGBA and padded rows.
        std::vector<Frame> frames;
        for (size_t i = 0; i < std::size(sizes); ++i) {
          const int channels = (i + variant) % 3 == 0 ? 1 : (i + variant) % 3 == 1 ? 3 : 4;
          frames.push_back(RandomFrame(sizes[i][0], sizes[i][1], channels, static_cast<int>(i % 2) * 5, seed++));
        }
        std::vector<const Frame*> ptrs;
        for (auto& f : frames) ptrs.push_back(&f);
        std::vector<float> out;
        std::vector<LetterboxGeometry> geometry;
        Run(p, ptrs, pool, &out, &geometry);
        const int64_t image = 3 * p.out_width * p.out_height;
        for (size_t i = 0; i < frames.size(); ++i) {
          const ImageU8& f = frames[i].view;
          const LetterboxGeometry ref_g = ReferenceGeometry(p, f.width, f.height);
          const LetterboxGeometry& g = geometry[i];
          CHECK(g.x == ref_g.x && g.y == ref_g.y && g.width == ref_g.width && g.height == ref_g.height,
                "geometry %dx%d -> %dx%d: got %d,%d %dx%d", f.width, f.height, p.out_width, p.out_height, g.x, g.y, g.width,
                g.height);
          const auto ref = ReferenceLetterbox(p, f);
          const auto got = ToNchw(out.data() + i * image, p.norm.layout == TensorLayout::Nhwc, p.out_height, p.out_width);
          const double min_std = std::min({p.norm.std[0], p.norm.std[1], p.norm.std[2]});
          const double r = ToleranceRatio(got.data(), ref.data(), ref.size(), 1e-6, 2e-3 / min_std);
          CHECK(r <= 1, "frame %dx%dx%d -> %dx%d mode %d variant %d: ratio %g", f.width, f.height, f.channels, p.out_width,
                p.out_height, static_cast<int>(mode), variant, r);
          ++cases;
        }
      }
  CHECK(cases == 3 * 2 * 4 * 10, "cases %d", cases);
}

// Specific geometry: a 1×1 frame fills everything; a 3000×17 strip becomes one centred row; a
// 640×480 frame gets bars of 20 rows; MapToSource undoes the mapping.
static void CheckGeometry() {
  LetterboxParams p;
  p.out_width = p.out_height = 160;
  auto g = ComputeLetterboxGeometry(p, 1, 1);
  CHECK(g.x == 0 && g.y == 0 && g.width == 160 && g.height == 160, "1x1: %d %d %d %d", g.x, g.y, g.width, g.height);
  g = ComputeLetterboxGeometry(p, 3000, 17);
  CHECK(g.x == 0 && g.y == 79 && g.width == 160 && g.height == 1, "3000x17: %d %d %d %d", g.x, g.y, g.width, g.height);
  g = ComputeLetterboxGeometry(p, 640, 480);
  CHECK(g.x == 0 && g.y == 20 && g.width == 160 && g.height == 120, "640x480: %d %d %d %d", g.x, g.y, g.width, g.height);
  g = ComputeLetterboxGeometry(p, 3000, 3000);  // 160/3000·3000 rounds below 160 in floating point
  CHECK(g.width == 160 && g.height == 160 && g.x == 0 && g.y == 0, "3000x3000: %d %d", g.width, g.height);
  g = ComputeLetterboxGeometry(p, 480, 640);
  float pts[4] = {static_cast<float>(g.x), static_cast<float>(g.y), static_cast<float>(g.x + g.width),
                  static_cast<float>(g.y + g.height)};
  MapToSource(g, pts, 2);
  CHECK(std::fabs(pts[0]) < 1e-4 && std::fabs(pts[1]) < 1e-4 && std::fabs(pts[2] - 480) < 1e-3 && std::fabs(pts[3] - 640) < 1e-3,
        "map back: %g %g %g %g", pts[0], pts[1], pts[2], pts[3]);
  p.mode = ResizeMode::Stretch;
  g = ComputeLetterboxGeometry(p, 3000, 17);
  CHECK(g.width == 160 && g.height == 160 && std::fabs(g.scale_y - 160.f / 17) < 1e-5f, "stretch %g", g.scale_y);
}

// A 1×1 RGBA frame: every content pixel is that pixel; the alpha byte is ignored.
static void CheckTinyAndRgba() {
  const uint8_t px[4] = {10, 20, 30, 0};
  ImageU8 f{px, 1, 1, 4, 4};
  LetterboxParams p;
  p.out_width = 5, p.out_height = 3;
  p.norm.order = ColorOrder::Bgr;
  std::vector<uint32_t> ws((LetterboxWorkspaceSize(p, 1) + 3) / 4);
  std::vector<float> out(45);
  Letterbox(p, &f, 1, out.data(), nullptr, ws.data(), nullptr);
  // Letterbox of a square into 5×3: content 3×3 at x = 1, bars of 128.
  bool ok = true;
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 5; ++x) {
        const float want = (x == 0 || x == 4) ? 128.f : static_cast<float>(px[2 - c]);
        ok &= out[(c * 3 + y) * 5 + x] == want;
      }
  CHECK(ok, "1x1 RGBA letterbox");
}

// Same size in and out: the tensor is the image, bit for bit (mean 0, std 1), in both modes.
static void CheckIdentity(ThreadPool* pool) {
  for (int channels : {1, 3, 4})
    for (ResizeMode mode : {ResizeMode::Stretch, ResizeMode::Letterbox}) {
      Frame f = RandomFrame(37, 23, channels, 3, 40 + channels);
      LetterboxParams p;
      p.out_width = 37, p.out_height = 23, p.mode = mode;
      std::vector<float> out;
      std::vector<LetterboxGeometry> geometry;
      Run(p, {&f}, pool, &out, &geometry);
      bool exact = true;
      for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 23; ++y)
          for (int x = 0; x < 37; ++x)
            exact &= out[(c * 23 + y) * 37 + x] == f.bytes[y * f.view.row_stride + x * channels + (channels == 1 ? 0 : c)];
      CHECK(exact, "identity resize, %d channels, mode %d", channels, static_cast<int>(mode));
      CHECK(geometry[0].scale_x == 1.f && geometry[0].scale_y == 1.f && geometry[0].x == 0, "identity geometry");
    }
}

int main() {
  ThreadPool pool(2);
  CheckGeometry();
  CheckTinyAndRgba();
  for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
    CheckIdentity(p);
    CheckAgainstReference(p);
  }
  return Finish("test_vision_letterbox");
}
