// FacePipeline on one CUDA device: the same configs, the same results (up to the networks' own
// GPU rounding), and no image or tensor crossing to the host between stages.
//
//   upload     the batch's frames packed into pinned staging, one host → device copy on the pipeline's stream
//   detect     LetterboxCuda (resize + normalise) → the detector network on a CudaEngine (RunDevice)
//   decode+NMS priors decode + score threshold (DecodeRetinaFaceCuda) → bitmask NMS (NmsCuda) → each
//              kept face mapped to source pixels, filtered by min_face_size and capped at max_faces,
//              then the faces of all frames packed into one list
//   align      each face's crop matrix computed on the device from its landmarks (align_matrices.h,
//              the CPU's arithmetic) → one WarpAffineBatchCuda of every face (and mirror, with flip)
//   embed      the embedder network on a CudaEngine → L2 normalisation of each face's row(s)
//   download   boxes, scores, landmarks and embeddings only
//
// One value does come back between stages: the number of faces, after NMS (4 bytes per frame). The
// embedder's batch is a host-side shape, so the host must know it; the detections themselves are
// final results and are downloaded at the same time. Embedder batches are rounded up to powers of two
// (≤ 128 crops per run), so at most 8 network plans serve any face count.
//
// Stages that run on the CPU only, rejected by the constructor with E_MODEL: the SSD decoder (face-api's
// detector), the 68-point landmark network, and alignments on 68-point landmarks.
//
// Built only with CUDA (cuda_face_pipeline.cu); the header needs no CUDA headers.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/cuda_engine.h"
#include "pipeline/detector.h"
#include "pipeline/face_pipeline.h"
#include "vision/image.h"

namespace facesight {

// Where one Run's time went, in milliseconds (CUDA events between the stages; the stages run one after
// another on the device). upload includes packing the frames into pinned memory; align includes the
// face-count read-back (a stream synchronisation).
struct CudaPipelineTimes {
  double upload_ms = 0, detect_ms = 0, decode_nms_ms = 0, align_ms = 0, embed_ms = 0, download_ms = 0;
};

class CudaFacePipeline : public RecognitionPipeline {
 public:
  // The engines carry the precision (CudaEngineOptions: fp32 or fp16) and the device; both must be on
  // one device. landmarker must be null and embedder may be null (no embedding). Checks the models and
  // configs on the host (E_MODEL: as FacePipeline, or a CPU-only stage, named); touches no device.
  CudaFacePipeline(std::shared_ptr<CudaEngine> detector, DetectorConfig detector_config,
                   std::shared_ptr<CudaEngine> landmarker, LandmarkerConfig landmarker_config,
                   std::shared_ptr<CudaEngine> embedder, EmbedderConfig embedder_config);
  ~CudaFacePipeline() override;
  CudaFacePipeline(const CudaFacePipeline&) = delete;
  CudaFacePipeline& operator=(const CudaFacePipeline&) = delete;

  // As FacePipeline::Run: one list per frame, by descending score; embed: also align and embed every
  // face. times: where the time went, or null (no events recorded). Waits for the result. Thread-safe
  // (calls run one after another). Throws E_STATE (embed without an embedder), E_MODEL (a network
  // whose outputs do not fit the config), E_DEVICE (no usable device, CUDA errors).
  std::vector<std::vector<PipelineFace>> Run(const std::vector<ImageU8>& frames, bool embed,
                                             CudaPipelineTimes* times);
  std::vector<std::vector<PipelineFace>> Run(const std::vector<ImageU8>& frames, bool embed) override {
    return Run(frames, embed, nullptr);
  }

  int32_t embedding_size() const override { return embedding_size_; }

 private:
  struct DeviceState;  // buffers, stream and events: CUDA types stay out of this header

  std::shared_ptr<CudaEngine> detector_, embedder_;
  DetectorConfig detector_config_;
  EmbedderConfig embedder_config_;
  DetectorOutputs detector_outputs_;
  int embedding_index_ = 0;
  int32_t embedding_size_ = 0;
  std::mutex mutex_;
  std::unique_ptr<DeviceState> state_;
};

}  // namespace facesight
