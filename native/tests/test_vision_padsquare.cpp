// Letterbox's PadSquare mode (face-api / TensorFlow.js preprocessing) against a plain reference:
// pad the image bottom/right to a square, then TensorFlow's legacy bilinear resize.
#include <algorithm>
#include <cmath>
#include <vector>

#include "test_util.h"
#include "vision/letterbox.h"

using namespace facesight;
using namespace facesight_test;

static void CheckPadSquare(int32_t w, int32_t h, int32_t channels, int32_t out, uint32_t seed) {
  std::vector<uint8_t> pixels(static_cast<size_t>(w) * h * channels);
  std::mt19937 rng(seed);
  for (auto& p : pixels) p = static_cast<uint8_t>(rng() & 0xff);
  ImageU8 frame{pixels.data(), w, h, channels, static_cast<int64_t>(w) * channels};
  LetterboxParams params;
  params.out_width = params.out_height = out;
  params.mode = ResizeMode::PadSquare;
  params.pad_rgb[0] = 10.f; params.pad_rgb[1] = 20.f; params.pad_rgb[2] = 30.f;
  params.norm.mean[0] = params.norm.mean[1] = params.norm.mean[2] = 127.5f;
  params.norm.std[0] = params.norm.std[1] = params.norm.std[2] = 127.5f;
  std::vector<float> got(3 * static_cast<size_t>(out) * out);
  std::vector<uint8_t> workspace(LetterboxWorkspaceSize(params, 1));
  LetterboxGeometry g;
  Letterbox(params, &frame, 1, got.data(), &g, workspace.data(), nullptr);

  // Reference: the padded square, then out = in · scale with floor/ceil neighbours.
  const int32_t side = std::max(w, h);
  auto value = [&](int32_t x, int32_t y, int c) -> double {
    if (x >= w || y >= h) return params.pad_rgb[channels == 1 ? 0 : c];
    return pixels[(static_cast<size_t>(y) * w + x) * channels + (channels == 1 ? 0 : c)];
  };
  double worst = 0;
  for (int32_t y = 0; y < out; ++y)
    for (int32_t x = 0; x < out; ++x) {
      const double sy = y * static_cast<double>(side) / out, sx = x * static_cast<double>(side) / out;
      const int32_t y0 = static_cast<int32_t>(std::floor(sy)), x0 = static_cast<int32_t>(std::floor(sx));
      const int32_t y1 = std::min(static_cast<int32_t>(std::ceil(sy)), side - 1), x1 = std::min(static_cast<int32_t>(std::ceil(sx)), side - 1);
      for (int c = 0; c < 3; ++c) {
        const double top = value(x0, y0, c) + (value(x1, y0, c) - value(x0, y0, c)) * (sx - x0);
        const double bottom = value(x0, y1, c) + (value(x1, y1, c) - value(x0, y1, c)) * (sx - x0);
        const double ref = ((top + (bottom - top) * (sy - y0)) - 127.5) / 127.5;
        worst = std::max(worst, std::fabs(ref - got[(static_cast<size_t>(c) * out + y) * out + x]));
      }
    }
  CHECK(worst <= 1e-5, "pad-square %dx%dx%d → %d: worst difference %g", w, h, channels, out, worst);
  // Geometry maps back as face-api does: scale = round(size · out / side) / size per axis.
  CHECK(g.x == 0 && g.y == 0, "content at the top-left");
  CHECK(std::fabs(g.scale_x - std::round(static_cast<double>(w) * out / side) / w) < 1e-6 &&
            std::fabs(g.scale_y - std::round(static_cast<double>(h) * out / side) / h) < 1e-6,
        "mapping scales %g %g", g.scale_x, g.scale_y);
}

int main() {
  CheckPadSquare(37, 23, 3, 64, 1);    // wider than tall: padded at the bottom
  CheckPadSquare(23, 37, 3, 64, 2);    // taller than wide: padded at the right
  CheckPadSquare(64, 64, 3, 64, 3);    // already the size: an exact conversion
  CheckPadSquare(300, 170, 4, 128, 4); // RGBA
  CheckPadSquare(50, 80, 1, 32, 5);    // grey, downscale
  return Finish("test_vision_padsquare");
}
