// The whole recognition path as one native call per batch of frames: detect → [68-point landmark
// net] → align (one warpAffine per face) → embedder → L2 normalise. No tensor leaves native code
// between stages; the stages share one thread pool and run one after another.
#pragma once
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "pipeline/detector.h"
#include "vision/align.h"
#include "vision/align_matrices.h"  // AlignmentKind, the crop matrices
#include "vision/image.h"

namespace facesight {

// The landmark network (face-api's FaceLandmark68Net): a square crop around the face box, padded
// with crop.border_rgb, resized to the input with TensorFlow's legacy sampling (as face-api feeds
// it); output [N, 136], (x, y) pairs in 0–1 of the crop.
struct LandmarkerConfig {
  WarpParams crop;  // the network input: size, normalisation (NCHW), padding colour
  std::string output;
  // When the eye line tilts by more than this many degrees, run the net again on the same square
  // turned upright: the net was trained on upright faces (0: never).
  float upright_degrees = 15.f;
  // Faces may be turned by any angle (sideways, upside down): find each face's quarter turn first
  // (8 more passes of the net per face).
  bool any_rotation = false;
};

struct EmbedderConfig {
  WarpParams crop;  // the network input: size, normalisation (NCHW), colour outside the frame
  AlignmentKind alignment = AlignmentKind::Similarity;
  // Similarity: template points (x, y) in input pixels (pixel centres at integers). They stand for
  // the five points (eyes, nose tip, mouth corners) when uses_68 is false, else for the 68-point
  // landmarks first_point, first_point + 1, … (dlib's template covers 17–67).
  std::vector<float> template_xy;
  bool uses_68 = false;
  int32_t first_point = 0;
  std::string output;
  // Test-time flip: embed the aligned crop and its mirror image and concatenate the two outputs
  // (the networks were trained on mirrored faces too): twice the embedder's work, twice the length.
  bool flip = false;
};

struct PipelineFace {
  DetectedFace face;               // box, score, five landmarks (the detector's, else from the 68)
  std::vector<float> landmarks68;  // 136 floats in source pixels, or empty
  std::vector<float> embedding;    // L2-normalised, or empty
};

// What the addon holds: a face pipeline on one device (FacePipeline on the CPU, CudaFacePipeline).
class RecognitionPipeline {
 public:
  virtual ~RecognitionPipeline() = default;
  // One list per frame, by descending score. embed: also align and embed every face (needs an
  // embedder). Thread-safe (calls run one after another).
  virtual std::vector<std::vector<PipelineFace>> Run(const std::vector<ImageU8>& frames, bool embed) = 0;
  virtual int32_t embedding_size() const = 0;
};

class FacePipeline : public RecognitionPipeline {
 public:
  // landmarker / embedder may be null (no such stage). Throws FaceException E_MODEL when a stage's
  // model does not have the input or output its config names, or the stages do not fit together
  // (an alignment that needs landmarks no stage gives).
  FacePipeline(std::shared_ptr<Detector> detector, std::shared_ptr<Engine> landmarker, LandmarkerConfig landmarker_config,
               std::shared_ptr<Engine> embedder, EmbedderConfig embedder_config, std::shared_ptr<ThreadPool> pool);

  std::vector<std::vector<PipelineFace>> Run(const std::vector<ImageU8>& frames, bool embed) override;
  int32_t embedding_size() const override { return embedding_size_; }
  bool has_landmarker() const { return landmarker_ != nullptr; }

 private:
  void RunLandmarks(const std::vector<ImageU8>& frames, std::vector<std::vector<PipelineFace>>& faces);
  void RunEmbedder(const std::vector<ImageU8>& frames, std::vector<std::vector<PipelineFace>>& faces);
  AffineMatrix AlignmentFor(const PipelineFace& face) const;

  std::shared_ptr<Detector> detector_;
  std::shared_ptr<Engine> landmarker_, embedder_;
  LandmarkerConfig landmarker_config_;
  EmbedderConfig embedder_config_;
  std::shared_ptr<ThreadPool> pool_;
  int landmarks_index_ = 0, embedding_index_ = 0;
  int32_t embedding_size_ = 0;
  std::mutex mutex_;
  std::vector<float> input_;  // network input, reused across calls
  static constexpr int64_t kMaxBatch = 32;  // crops per network run (bounds input_)
};

// The index of the stage's output named `name` (a one-output model may name it otherwise). Throws
// E_MODEL naming the stage ("landmark", "embedding") when there is none.
int FindStageOutput(const std::vector<ValueInfo>& outputs, const std::string& name, const char* stage);

// What a pipeline checks of its embedding stage (FacePipeline and CudaFacePipeline alike): one input,
// the configured output, a template that fits the alignment. Returns the output's index and sets
// *embedding_size to the embedding's length per face (0 when the model leaves it open), doubled with
// flip. Throws E_MODEL.
int CheckEmbedderStage(const std::vector<ValueInfo>& inputs, const std::vector<ValueInfo>& outputs,
                       const EmbedderConfig& config, bool has_landmarker, int32_t* embedding_size);

// The five points (left eye, right eye, nose tip, left and right mouth corners, as seen in the
// image) from dlib's 68-point layout: the eye centres (means of 36–41 and 42–47), 30, 48 and 54.
void FivePointsFrom68(const float* landmarks68, float* five);

}  // namespace facesight
