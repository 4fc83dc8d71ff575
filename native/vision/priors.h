// Detector heads → candidate faces. RetinaFace: prior boxes (Pytorch_Retinaface's PriorBox) and the
// decoding of loc / landms offsets against them; SSD: the same box decoding with anchors and scale
// factors given (the face-api.js SSD MobileNetV1 model). Both keep the candidates whose score passes
// a threshold, in anchor order, as compact arrays; NMS (nms.h) then sorts and prunes them.
#pragma once
#include <cstdint>

namespace facesight {

// ---- Priors ---------------------------------------------------------------------------------------

constexpr int kMaxPriorLevels = 6;
constexpr int kMaxPriorSizes = 4;

struct PriorLevel {
  int32_t step = 8;                     // feature stride in pixels
  int32_t num_sizes = 0;
  float min_sizes[kMaxPriorSizes] = {};  // square prior sides in pixels, one prior each per cell
};

// Priors for one network input size. Feature map of a level: ceil(H / step) × ceil(W / step) (what
// MobileNet's stride-2 3×3 convolutions with padding 1 produce for any size).
struct PriorParams {
  int32_t image_width = 0, image_height = 0;
  int32_t num_levels = 0;
  PriorLevel levels[kMaxPriorLevels];
  bool clip = false;  // clamp every value to [0, 1]
};

// RetinaFace mnet0.25 / resnet50 (cfg_mnet): min sizes [[16, 32], [64, 128], [256, 512]], steps 8, 16, 32.
PriorParams RetinaFacePriorParams(int32_t image_width, int32_t image_height);

int64_t PriorCount(const PriorParams& params);

// priors: PriorCount × 4 floats (cx, cy, w, h), normalised by the image size, in Pytorch_Retinaface's
// order: level, row, column, size. Values are computed in double and rounded once, like the Python.
void GeneratePriors(const PriorParams& params, float* priors);

// ---- Decoding -------------------------------------------------------------------------------------

// Compact candidates (capacity: the anchor count). landmarks and anchor may be null.
struct Candidates {
  float* boxes = nullptr;      // [n][4] x1, y1, x2, y2 in pixels of the network input
  float* scores = nullptr;     // [n]
  float* landmarks = nullptr;  // [n][10] five (x, y) points in pixels (RetinaFace only)
  int32_t* anchor = nullptr;   // [n] the anchor each candidate came from
};

struct RetinaDecodeParams {
  int32_t image_width = 0, image_height = 0;  // the network input's size: normalised → pixels
  float variance_center = 0.1f, variance_size = 0.2f;
  float score_threshold = 0.5f;  // keeps score > threshold (strict, as Pytorch_Retinaface)
};

// loc [A][4], conf [A][2] (softmax; score = conf[a][1]), landms [A][10] (may be null when
// out.landmarks is). As box_utils.decode / decode_landm:
//   cx = pcx + dx·v0·pw, w = pw·exp(dw·v1), x1 = cx − w/2, x2 = x1 + w (same for y), landmark = pc + d·v0·p.
// Returns the candidate count.
int64_t DecodeRetinaFace(const RetinaDecodeParams& params, const float* priors, int64_t anchors, const float* loc,
                         const float* conf, const float* landms, const Candidates& out);

struct SsdDecodeParams {
  int32_t image_width = 0, image_height = 0;
  // Box encoding scale factors (TensorFlow's box coder: 10, 10, 5, 5): cx = acx + dx / scale_x · aw,
  // w = aw · exp(dw / scale_w).
  float scale_x = 10.f, scale_y = 10.f, scale_w = 5.f, scale_h = 5.f;
  bool yx_order = false;     // encodings are (dy, dx, dh, dw), TensorFlow's order, instead of (dx, dy, dw, dh)
  bool clip = false;         // clamp normalised boxes to [0, 1] before scaling (face-api.js does)
  int32_t score_stride = 1;  // floats per anchor in the score array
  int32_t score_index = 0;   // which of them is the face score
  bool score_sigmoid = false;  // scores are logits: apply the logistic function first
  float score_threshold = 0.5f;  // keeps score > threshold
};

// anchors [A][4] (cx, cy, w, h, normalised), deltas [A][4], scores [A][score_stride]. Boxes come out as
// x1, y1, x2, y2 = c ∓ size/2, scaled to pixels. Returns the candidate count.
int64_t DecodeSsd(const SsdDecodeParams& params, const float* anchors, int64_t count, const float* deltas,
                  const float* scores, const Candidates& out);

}  // namespace facesight
