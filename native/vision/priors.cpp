#include "vision/priors.h"

#include <algorithm>
#include <cmath>

namespace facesight {

PriorParams RetinaFacePriorParams(int32_t image_width, int32_t image_height) {
  PriorParams p;
  p.image_width = image_width, p.image_height = image_height;
  p.num_levels = 3;
  const int32_t steps[3] = {8, 16, 32};
  const float sizes[3][2] = {{16, 32}, {64, 128}, {256, 512}};
  for (int l = 0; l < 3; ++l) {
    p.levels[l].step = steps[l];
    p.levels[l].num_sizes = 2;
    p.levels[l].min_sizes[0] = sizes[l][0], p.levels[l].min_sizes[1] = sizes[l][1];
  }
  return p;
}

static int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t PriorCount(const PriorParams& p) {
  int64_t n = 0;
  for (int l = 0; l < p.num_levels; ++l)
    n += CeilDiv(p.image_height, p.levels[l].step) * CeilDiv(p.image_width, p.levels[l].step) * p.levels[l].num_sizes;
  return n;
}

void GeneratePriors(const PriorParams& p, float* priors) {
  const double W = p.image_width, H = p.image_height;
  auto put = [&](double v) {
    float f = static_cast<float>(v);
    *priors++ = p.clip ? std::min(std::max(f, 0.f), 1.f) : f;
  };
  for (int l = 0; l < p.num_levels; ++l) {
    const PriorLevel& level = p.levels[l];
    const int64_t rows = CeilDiv(p.image_height, level.step), cols = CeilDiv(p.image_width, level.step);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        for (int s = 0; s < level.num_sizes; ++s) {
          put((j + 0.5) * level.step / W);
          put((i + 0.5) * level.step / H);
          put(level.min_sizes[s] / W);
          put(level.min_sizes[s] / H);
        }
  }
}

int64_t DecodeRetinaFace(const RetinaDecodeParams& p, const float* priors, int64_t anchors, const float* loc,
                         const float* conf, const float* landms, const Candidates& out) {
  const float W = static_cast<float>(p.image_width), H = static_cast<float>(p.image_height);
  const float v0 = p.variance_center, v1 = p.variance_size;
  int64_t n = 0;
  for (int64_t a = 0; a < anchors; ++a) {
    const float score = conf[2 * a + 1];
    if (!(score > p.score_threshold)) continue;  // the exp below runs only for the few that pass
    const float* pr = priors + 4 * a;
    const float* d = loc + 4 * a;
    const float cx = pr[0] + d[0] * v0 * pr[2], cy = pr[1] + d[1] * v0 * pr[3];
    const float w = pr[2] * std::exp(d[2] * v1), h = pr[3] * std::exp(d[3] * v1);
    const float x1 = cx - w / 2, y1 = cy - h / 2;
    float* box = out.boxes + 4 * n;
    box[0] = x1 * W, box[1] = y1 * H, box[2] = (x1 + w) * W, box[3] = (y1 + h) * H;
    out.scores[n] = score;
    if (out.landmarks) {
      const float* m = landms + 10 * a;
      float* lm = out.landmarks + 10 * n;
      for (int k = 0; k < 5; ++k) {
        lm[2 * k] = (pr[0] + m[2 * k] * v0 * pr[2]) * W;
        lm[2 * k + 1] = (pr[1] + m[2 * k + 1] * v0 * pr[3]) * H;
      }
    }
    if (out.anchor) out.anchor[n] = static_cast<int32_t>(a);
    ++n;
  }
  return n;
}

int64_t DecodeSsd(const SsdDecodeParams& p, const float* anchors, int64_t count, const float* deltas,
                  const float* scores, const Candidates& out) {
  const float W = static_cast<float>(p.image_width), H = static_cast<float>(p.image_height);
  const int ix = p.yx_order ? 1 : 0, iy = 1 - ix;  // positions of dx and dy (and dw, dh after them)
  auto clip = [&](float v) { return p.clip ? std::min(std::max(v, 0.f), 1.f) : v; };
  int64_t n = 0;
  for (int64_t a = 0; a < count; ++a) {
    float score = scores[a * p.score_stride + p.score_index];
    if (p.score_sigmoid) score = 1.f / (1.f + std::exp(-score));
    if (!(score > p.score_threshold)) continue;
    const float* an = anchors + 4 * a;
    const float* d = deltas + 4 * a;
    const float cx = an[0] + d[ix] / p.scale_x * an[2], cy = an[1] + d[iy] / p.scale_y * an[3];
    const float w = an[2] * std::exp(d[2 + ix] / p.scale_w), h = an[3] * std::exp(d[2 + iy] / p.scale_h);
    float* box = out.boxes + 4 * n;
    box[0] = clip(cx - w / 2) * W, box[1] = clip(cy - h / 2) * H;
    box[2] = clip(cx + w / 2) * W, box[3] = clip(cy + h / 2) * H;
    out.scores[n] = score;
    if (out.anchor) out.anchor[n] = static_cast<int32_t>(a);
    ++n;
  }
  return n;
}

}  // namespace facesight
