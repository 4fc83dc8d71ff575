// Face detection as one native call: frames (8-bit, any size) → resize/normalise → the detector
// network → decode against priors → NMS → boxes and landmarks in source pixels. No tensor leaves
// native code between stages. Decoders: RetinaFace priors, or SSD anchors from the weights (face-api).
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "vision/image.h"
#include "vision/letterbox.h"
#include "vision/priors.h"

namespace facesight {

enum class DecoderKind { RetinaFace, Ssd };

struct DetectorConfig {
  DecoderKind decoder = DecoderKind::RetinaFace;
  int32_t input_width = 0, input_height = 0;  // 0 × 0: each frame at its own size
  ResizeMode resize = ResizeMode::Letterbox;  // when resizing to a fixed input
  float pad_rgb[3] = {128.f, 128.f, 128.f};
  PixelNormalization norm;
  // SSD: anchors (cx, cy, w, h normalised, from the weights) and the decoder's parameters.
  std::vector<float> anchors;
  SsdDecodeParams ssd;
  bool nms_plus_one = true;                   // py_cpu_nms's +1 pixel areas (RetinaFace)
  PriorParams priors;                         // levels (steps, min sizes) and clip; size set per input
  float variance_center = 0.1f, variance_size = 0.2f;
  float score_threshold = 0.5f, nms_threshold = 0.4f;
  int32_t max_faces = 0;                      // 0: no limit
  int32_t pre_nms_top_k = 0;                  // NMS considers only the best this many candidates (0: all)
  float min_face_size = 0.f;                  // in source pixels (the shorter box side)
  std::string boxes_output, scores_output, landmarks_output;  // landmarks '' when there are none
};

struct DetectedFace {
  float box[4];        // x1, y1, x2, y2 in source pixels
  float score;
  float landmarks[10];  // five (x, y) points in source pixels
  bool has_landmarks;
};

// Which outputs of a detector model are its boxes, scores and landmarks (−1: none), found by the
// names in the config or, for RetinaFace files exported under other names, by their last dimension
// (4 / 2 / 10). Throws E_MODEL when one is missing or the model has not exactly one input.
struct DetectorOutputs {
  int boxes = -1, scores = -1, landmarks = -1;
};
DetectorOutputs FindDetectorOutputs(const std::vector<ValueInfo>& inputs, const std::vector<ValueInfo>& outputs,
                                    const DetectorConfig& config);

class Detector {
 public:
  Detector(std::shared_ptr<Engine> engine, DetectorConfig config);

  // One list per frame, by descending score. Thread-safe (calls run one after another).
  std::vector<std::vector<DetectedFace>> Detect(const std::vector<ImageU8>& frames);

 private:
  std::vector<DetectedFace> Decode(const float* loc, const float* conf, const float* landms, int32_t width,
                                   int32_t height, const LetterboxGeometry& geometry);
  const std::vector<float>& PriorsFor(int32_t width, int32_t height);

  std::shared_ptr<Engine> engine_;
  DetectorConfig config_;
  int boxes_index_ = -1, scores_index_ = -1, landmarks_index_ = -1;
  std::mutex mutex_;
  // Priors for the last input size (video frames repeat one size).
  int32_t priors_width_ = -1, priors_height_ = -1;
  std::vector<float> priors_;
  // Per-call buffers, reused (no allocation per frame once sizes repeat).
  struct Scratch {
    std::vector<float> input, boxes, scores, landmarks;
    std::vector<int32_t> anchor, kept;
    std::vector<uint8_t> nms, resize;
  } scratch_;
};

}  // namespace facesight
