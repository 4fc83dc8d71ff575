// Greedy non-maximum suppression over one image's candidates (py_cpu_nms): visit candidates by
// descending score and keep each one that no kept candidate overlaps by IoU > iou_threshold.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>

namespace facesight {

struct NmsParams {
  float iou_threshold = 0.4f;  // suppress when IoU > threshold
  float score_threshold = -std::numeric_limits<float>::infinity();  // consider only score > threshold
  int32_t pre_top_k = 0;   // consider only the best pre_top_k candidates (≤ 0: all)
  int32_t max_output = 0;  // keep at most this many (≤ 0: all)
  // Pixel convention of py_cpu_nms: a box spans x2 − x1 + 1 pixels (and overlaps add 1 likewise).
  // Off: continuous coordinates, width x2 − x1.
  bool plus_one = false;
};

// Scratch for count candidates.
size_t NmsWorkspaceSize(int64_t count);

// boxes [count][4] (x1, y1, x2, y2), scores [count]. Writes the kept indices to kept (capacity:
// count, or max_output when set) by descending score; equal scores go by ascending index, so the
// result is deterministic (stable). Returns how many were kept. workspace: NmsWorkspaceSize bytes,
// aligned to 4.
int64_t Nms(const NmsParams& params, const float* boxes, const float* scores, int64_t count, int32_t* kept,
            void* workspace);

}  // namespace facesight
