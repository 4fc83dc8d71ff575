#include "vision/nms.h"

#include <algorithm>

namespace facesight {

// Workspace: the visiting order, then the candidates' coordinates and areas gathered in that order
// (structure of arrays, so the suppression sweep is a vectorisable pass over contiguous floats), then
// one suppressed flag each.
size_t NmsWorkspaceSize(int64_t count) {
  return static_cast<size_t>(count) * (sizeof(int32_t) + 5 * sizeof(float) + 1);
}

int64_t Nms(const NmsParams& p, const float* boxes, const float* scores, int64_t count, int32_t* kept,
            void* workspace) {
  int32_t* order = static_cast<int32_t*>(workspace);
  float* x1 = reinterpret_cast<float*>(order + count);
  float* y1 = x1 + count;
  float* x2 = y1 + count;
  float* y2 = x2 + count;
  float* area = y2 + count;
  uint8_t* suppressed = reinterpret_cast<uint8_t*>(area + count);

  int64_t m = 0;
  for (int64_t i = 0; i < count; ++i)
    if (scores[i] > p.score_threshold) order[m++] = static_cast<int32_t>(i);
  // A strict total order (score, then index) makes every sort, full or partial, stable.
  auto before = [scores](int32_t a, int32_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  if (p.pre_top_k > 0 && m > p.pre_top_k) {
    std::partial_sort(order, order + p.pre_top_k, order + m, before);
    m = p.pre_top_k;
  } else {
    std::sort(order, order + m, before);
  }

  const float one = p.plus_one ? 1.f : 0.f;
  for (int64_t i = 0; i < m; ++i) {
    const float* b = boxes + 4 * static_cast<int64_t>(order[i]);
    x1[i] = b[0], y1[i] = b[1], x2[i] = b[2], y2[i] = b[3];
    area[i] = (x2[i] - x1[i] + one) * (y2[i] - y1[i] + one);
    suppressed[i] = 0;
  }

  const int64_t max_out = p.max_output > 0 ? p.max_output : m;
  int64_t n = 0;
  for (int64_t i = 0; i < m && n < max_out; ++i) {
    if (suppressed[i]) continue;
    kept[n++] = order[i];
    const float ax1 = x1[i], ay1 = y1[i], ax2 = x2[i], ay2 = y2[i], aa = area[i];
    for (int64_t j = i + 1; j < m; ++j) {
      const float w = std::max(0.f, std::min(ax2, x2[j]) - std::max(ax1, x1[j]) + one);
      const float h = std::max(0.f, std::min(ay2, y2[j]) - std::max(ay1, y1[j]) + one);
      const float inter = w * h;
      // The division (not inter > t·union) keeps py_cpu_nms's rounding at the threshold; 0/0 of
      // two empty boxes is NaN, which suppresses nothing, as in NumPy.
      const float iou = inter / (aa + area[j] - inter);
      suppressed[j] |= static_cast<uint8_t>(iou > p.iou_threshold);
    }
  }
  return n;
}

}  // namespace facesight
