#include "pipeline/detector.h"

#include <algorithm>

#include "common/error.h"
#include "vision/letterbox.h"
#include "vision/nms.h"

namespace facesight {

DetectorOutputs FindDetectorOutputs(const std::vector<ValueInfo>& inputs, const std::vector<ValueInfo>& outputs,
                                    const DetectorConfig& config) {
  DetectorOutputs found;
  for (size_t k = 0; k < outputs.size(); ++k) {
    if (outputs[k].name == config.boxes_output) found.boxes = static_cast<int>(k);
    if (outputs[k].name == config.scores_output) found.scores = static_cast<int>(k);
    if (outputs[k].name == config.landmarks_output) found.landmarks = static_cast<int>(k);
  }
  const bool wants_landmarks = !config.landmarks_output.empty();
  // RetinaFace files exported by other tools name their outputs differently (Pytorch_Retinaface's
  // export script names only the first): then recognise them by their last dim, 4 / 2 / 10.
  if (config.decoder == DecoderKind::RetinaFace && (found.boxes < 0 || found.scores < 0 || found.landmarks < 0) &&
      outputs.size() == 3) {
    DetectorOutputs by_dim;
    for (size_t k = 0; k < outputs.size(); ++k) {
      const auto& dims = outputs[k].dims;
      const int64_t last = dims.empty() ? -1 : dims.back().value;
      if (last == 4) by_dim.boxes = static_cast<int>(k);
      else if (last == 2) by_dim.scores = static_cast<int>(k);
      else if (last == 10) by_dim.landmarks = static_cast<int>(k);
    }
    if (by_dim.boxes >= 0 && by_dim.scores >= 0 && by_dim.landmarks >= 0) found = by_dim;
  }
  if (found.boxes < 0 || found.scores < 0 || (wants_landmarks && found.landmarks < 0))
    Fail(ErrorCode::Model, "The detector model lacks an output named in its descriptor (boxes '", config.boxes_output,
         "', scores '", config.scores_output, "', landmarks '", config.landmarks_output, "')");
  if (inputs.size() != 1) Fail(ErrorCode::Model, "A detector model must have exactly one input");
  return found;
}

Detector::Detector(std::shared_ptr<Engine> engine, DetectorConfig config)
    : engine_(std::move(engine)), config_(std::move(config)) {
  const DetectorOutputs found = FindDetectorOutputs(engine_->inputs(), engine_->outputs(), config_);
  boxes_index_ = found.boxes;
  scores_index_ = found.scores;
  landmarks_index_ = found.landmarks;
  if (config_.decoder == DecoderKind::Ssd && (config_.anchors.empty() || config_.anchors.size() % 4))
    Fail(ErrorCode::Model, "An SSD detector needs its anchors (cx, cy, w, h per anchor)");
}

const std::vector<float>& Detector::PriorsFor(int32_t width, int32_t height) {
  if (width != priors_width_ || height != priors_height_) {
    PriorParams p = config_.priors;
    p.image_width = width;
    p.image_height = height;
    priors_.resize(static_cast<size_t>(PriorCount(p)) * 4);
    GeneratePriors(p, priors_.data());
    priors_width_ = width;
    priors_height_ = height;
  }
  return priors_;
}

std::vector<DetectedFace> Detector::Decode(const float* loc, const float* conf, const float* landms, int32_t width,
                                           int32_t height, const LetterboxGeometry& geometry) {
  const bool ssd = config_.decoder == DecoderKind::Ssd;
  const std::vector<float>& priors = ssd ? config_.anchors : PriorsFor(width, height);
  const int64_t anchors = static_cast<int64_t>(priors.size() / 4);
  // Scratch kept across calls (Detect holds the lock): video frames repeat one size.
  std::vector<float>& boxes = scratch_.boxes;
  std::vector<float>& scores = scratch_.scores;
  std::vector<float>& landmarks = scratch_.landmarks;
  boxes.resize(anchors * 4);
  scores.resize(anchors);
  landmarks.resize(ssd ? 0 : anchors * 10);
  scratch_.anchor.resize(anchors);
  const Candidates out{boxes.data(), scores.data(), ssd ? nullptr : landmarks.data(), scratch_.anchor.data()};
  int64_t n;
  if (ssd) {
    SsdDecodeParams decode = config_.ssd;
    decode.image_width = width;
    decode.image_height = height;
    decode.score_threshold = config_.score_threshold;
    n = DecodeSsd(decode, priors.data(), anchors, loc, conf, out);
  } else {
    RetinaDecodeParams decode;
    decode.image_width = width;
    decode.image_height = height;
    decode.variance_center = config_.variance_center;
    decode.variance_size = config_.variance_size;
    decode.score_threshold = config_.score_threshold;
    n = DecodeRetinaFace(decode, priors.data(), anchors, loc, conf, landms, out);
  }
  NmsParams nms;
  nms.iou_threshold = config_.nms_threshold;
  nms.plus_one = config_.nms_plus_one;
  nms.pre_top_k = config_.pre_nms_top_k;
  std::vector<int32_t>& kept = scratch_.kept;
  kept.resize(n);
  scratch_.nms.resize(NmsWorkspaceSize(n));
  const int64_t count = Nms(nms, boxes.data(), scores.data(), n, kept.data(), scratch_.nms.data());
  std::vector<DetectedFace> faces;
  for (int64_t k = 0; k < count; ++k) {
    const int32_t i = kept[k];
    DetectedFace f{};
    std::copy_n(&boxes[i * 4], 4, f.box);
    if (ssd) {
      // face-api clips after NMS, each side once: top/left ≥ 0, bottom/right ≤ the input.
      f.box[0] = std::max(f.box[0], 0.f);
      f.box[1] = std::max(f.box[1], 0.f);
      f.box[2] = std::min(f.box[2], static_cast<float>(width));
      f.box[3] = std::min(f.box[3], static_cast<float>(height));
    } else {
      std::copy_n(&landmarks[i * 10], 10, f.landmarks);
      MapToSource(geometry, f.landmarks, 5);
    }
    f.has_landmarks = !ssd;
    f.score = scores[i];
    MapToSource(geometry, f.box, 2);
    const float side = std::min(f.box[2] - f.box[0], f.box[3] - f.box[1]);
    if (side < config_.min_face_size) continue;
    faces.push_back(f);
    // Greedy NMS keeps faces in score order, so stopping here equals NMS with a result cap.
    if (config_.max_faces > 0 && static_cast<int32_t>(faces.size()) >= config_.max_faces) break;
  }
  return faces;
}

std::vector<std::vector<DetectedFace>> Detector::Detect(const std::vector<ImageU8>& frames) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::vector<DetectedFace>> results(frames.size());
  LetterboxParams resize;
  resize.norm = config_.norm;
  resize.norm.layout = TensorLayout::Nchw;
  const bool fixed = config_.input_width > 0 && config_.input_height > 0;
  // A fixed input size runs the whole batch in one network call; original sizes run frame by frame.
  const size_t group = fixed ? frames.size() : 1;
  for (size_t first = 0; first < frames.size(); first += group) {
    const size_t count = std::min(group, frames.size() - first);
    const int32_t width = fixed ? config_.input_width : frames[first].width;
    const int32_t height = fixed ? config_.input_height : frames[first].height;
    resize.out_width = width;
    resize.out_height = height;
    resize.mode = fixed ? config_.resize : ResizeMode::Stretch;
    std::copy_n(config_.pad_rgb, 3, resize.pad_rgb);
    std::vector<float>& input = scratch_.input;
    input.resize(count * 3 * static_cast<size_t>(width) * height);
    std::vector<LetterboxGeometry> geometry(count);
    scratch_.resize.resize(LetterboxWorkspaceSize(resize, static_cast<int64_t>(count)));
    Letterbox(resize, frames.data() + first, static_cast<int64_t>(count), input.data(), geometry.data(),
              scratch_.resize.data(), nullptr);
    std::vector<OutputTensor> out =
        engine_->Run({InputView{input.data(), {static_cast<int64_t>(count), 3, height, width}}});
    int64_t expected = static_cast<int64_t>(config_.anchors.size() / 4);
    if (config_.decoder == DecoderKind::RetinaFace) {
      PriorParams p = config_.priors;
      p.image_width = width;
      p.image_height = height;
      expected = PriorCount(p);
    }
    const int64_t anchors = out[scores_index_].shape.size() == 3 ? out[scores_index_].shape[1] : -1;
    if (anchors != expected)
      Fail(ErrorCode::Model, "The detector produced ", anchors, " anchors for a ", width, "×", height,
           " input, but its descriptor gives ", expected);
    const int64_t score_stride = out[scores_index_].shape[2];
    for (size_t k = 0; k < count; ++k)
      results[first + k] = Decode(out[boxes_index_].data.get() + k * anchors * 4,
                                  out[scores_index_].data.get() + k * anchors * score_stride,
                                  landmarks_index_ >= 0 ? out[landmarks_index_].data.get() + k * anchors * 10 : nullptr,
                                  width, height, geometry[k]);
  }
  return results;
}

}  // namespace facesight
