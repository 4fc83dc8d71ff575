// CudaFacePipeline (cuda_face_pipeline.h). The pipeline's own work runs on one stream; each network
// runs on its CudaEngine's stream, handed over both ways with events, so nothing waits on the host
// but the face count after NMS and the final download. Device buffers and pinned staging grow to the
// largest batch seen and are reused; every buffer a Run needs is sized before its first launch (a
// cudaFree while launches are pending would wait for them).
//
// Compiled with -fmad=false (CMakeLists.txt): the face selection and alignment arithmetic then
// rounds as the CPU pipeline's does, so both cut the same crops.
#include "pipeline/cuda_face_pipeline.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "vision/align_cuda.h"
#include "vision/align_matrices.h"
#include "vision/letterbox_cuda.h"
#include "vision/nms_cuda.h"
#include "vision/priors_cuda.h"

namespace facesight {
namespace {

using namespace cuda_detail;

// Embedder runs take at most this many crops, rounded up to a power of two: 8 plan shapes in all,
// what a CudaEngine caches by default.
constexpr int64_t kMaxEmbedCrops = 128;

void Check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();
  Fail(ErrorCode::Device, what, ": ", cudaGetErrorString(err));
}

size_t AlignUp(size_t n) { return (n + 255) & ~size_t{255}; }

int64_t PowerOfTwoAtLeast(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

// A grow-only allocation, device or pinned host. Grown only between Runs' launches (see the top).
template <bool kPinned>
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Release(); }
  template <typename T>
  T* Get(size_t count) {
    const size_t bytes = std::max<size_t>(count * sizeof(T), 1);
    if (bytes > bytes_) {
      Release();
      Check(kPinned ? cudaHostAlloc(&p_, bytes, cudaHostAllocDefault) : cudaMalloc(&p_, bytes),
            kPinned ? "allocating pinned staging memory" : "allocating device memory");
      bytes_ = bytes;
    }
    return static_cast<T*>(p_);
  }

 private:
  void Release() {
    if (p_) kPinned ? cudaFreeHost(p_) : cudaFree(p_);
    p_ = nullptr;
    bytes_ = 0;
  }
  void* p_ = nullptr;
  size_t bytes_ = 0;
};
using DeviceBuffer = Buffer<false>;
using PinnedBuffer = Buffer<true>;

// One detection as the device lists it: 64 bytes, downloaded as is.
struct DeviceFace {
  float box[4];  // x1, y1, x2, y2 in source pixels
  float score;
  float landmarks[10];
  int32_t frame;
};
static_assert(sizeof(DeviceFace) == 64, "DeviceFace is downloaded as 64-byte records");

// ---- Kernels -----------------------------------------------------------------------------------------

__device__ void MapToSourceDevice(const LetterboxGeometry& g, float* xy, int n) {
  for (int i = 0; i < n; ++i) {
    xy[2 * i] = (xy[2 * i] - g.x) / g.scale_x;
    xy[2 * i + 1] = (xy[2 * i + 1] - g.y) / g.scale_y;
  }
}

struct SelectArgs {
  const float* boxes;      // candidates, in the network input's pixels
  const float* scores;
  const float* landmarks;
  const int32_t* kept;     // NMS's kept candidates, by descending score
  const int32_t* kept_count;
  const LetterboxGeometry* geometry;  // this frame's
  float min_face_size;
  int32_t limit;           // faces to keep at most (max_faces, else the slot capacity)
  int32_t frame;
  DeviceFace* slots;       // this frame's
  int32_t* slot_count;
};

// One warp per frame: the kept candidates in order, mapped to source pixels, those smaller than
// min_face_size dropped, the first `limit` written — as Detector::Decode does after NMS.
__global__ void __launch_bounds__(32) SelectFacesKernel(const SelectArgs a) {
  const int lane = threadIdx.x;
  const int32_t n = *a.kept_count;
  const LetterboxGeometry g = *a.geometry;
  int32_t taken = 0;
  for (int32_t base = 0; base < n && taken < a.limit; base += 32) {
    const int32_t k = base + lane;
    DeviceFace f;
    bool pass = false;
    if (k < n) {
      const int32_t i = a.kept[k];
      for (int c = 0; c < 4; ++c) f.box[c] = a.boxes[i * 4 + c];
      for (int c = 0; c < 10; ++c) f.landmarks[c] = a.landmarks[i * 10 + c];
      f.score = a.scores[i];
      f.frame = a.frame;
      MapToSourceDevice(g, f.landmarks, 5);
      MapToSourceDevice(g, f.box, 2);
      const float side = StdMin(f.box[2] - f.box[0], f.box[3] - f.box[1]);
      pass = !(side < a.min_face_size);
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, pass);
    const int32_t at = taken + __popc(ballot & ((1u << lane) - 1));
    if (pass && at < a.limit) a.slots[at] = f;
    taken += __popc(ballot);
  }
  if (lane == 0) *a.slot_count = min(taken, a.limit);
}

// One block: every frame's faces into one list (frame order), and the counts the host reads back:
// header[f] = faces of frame f, header[frames] = all faces.
__global__ void PackFacesKernel(const DeviceFace* slots, const int32_t* slot_count, int32_t frames, int32_t slot_capacity,
                                DeviceFace* packed, int32_t* offsets, int32_t* header) {
  if (threadIdx.x == 0) {
    int32_t total = 0;
    for (int32_t f = 0; f < frames; ++f) {
      header[f] = slot_count[f];
      offsets[f] = total;
      total += slot_count[f];
    }
    header[frames] = total;
  }
  __syncthreads();
  for (int32_t f = 0; f < frames; ++f) {
    const int32_t n = slot_count[f], at = offsets[f];
    for (int32_t k = threadIdx.x; k < n; k += blockDim.x) packed[at + k] = slots[static_cast<int64_t>(f) * slot_capacity + k];
  }
}

struct AlignArgs {
  const DeviceFace* faces;
  int64_t count;
  int32_t views;  // 2 with flip: the crop, then its mirror image
  AlignmentKind kind;
  float template_xy[10];  // five points (the CUDA pipeline aligns on the detector's five)
  int32_t template_points;
  int32_t width, height;  // the embedder's input
  WarpCrop* crops;        // [count · views]
};

// FacePipeline::AlignmentFor per face (align_matrices.h): the detector always gives five landmarks.
__global__ void AlignKernel(const AlignArgs a) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.count) return;
  const DeviceFace& f = a.faces[i];
  WarpCrop crop;
  crop.frame = f.frame;
  crop.matrix = EmbedderCrop(a.kind, f.box, f.landmarks, f.landmarks, a.template_xy, a.template_points, a.width, a.height);
  a.crops[i * a.views] = crop;
  if (a.views == 2) {
    crop.matrix = MirroredCrop(crop.matrix, a.width);
    a.crops[i * 2 + 1] = crop;
  }
}

constexpr int kNormThreads = 128;

// Each row scaled to unit length (the sum in double, as FacePipeline's L2Normalize): with flip a
// face's row is its two outputs side by side, normalised together.
__global__ void __launch_bounds__(kNormThreads) L2NormalizeRowsKernel(float* rows, int64_t length) {
  __shared__ double partial[kNormThreads];
  float* v = rows + static_cast<int64_t>(blockIdx.x) * length;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < length; i += kNormThreads) sum += static_cast<double>(v[i]) * v[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int step = kNormThreads / 2; step > 0; step /= 2) {
    if (threadIdx.x < step) partial[threadIdx.x] += partial[threadIdx.x + step];
    __syncthreads();
  }
  const double total = partial[0];
  const float inv = total > 0 ? static_cast<float>(1.0 / sqrt(total)) : 0.f;
  for (int64_t i = threadIdx.x; i < length; i += kNormThreads) v[i] *= inv;
}

enum Stage { kStart, kUpload, kDetect, kDecodeNms, kAlign, kEmbed, kDownload };

// Frames run through the detector together: all of them at a fixed input size, else each run of
// consecutive frames of one size (the CPU runs those one by one; per-frame networks give the same).
struct FrameGroup {
  size_t first = 0, count = 0;
  int32_t width = 0, height = 0;
  int64_t anchors = 0;
  std::vector<Shape> output_shapes;
};

}  // namespace

struct CudaFacePipeline::DeviceState {
  int device = 0;
  cudaStream_t stream = nullptr;
  cudaEvent_t to_engine = nullptr, from_engine = nullptr;  // stream hand-overs
  std::vector<cudaEvent_t> marks;                          // timing, when asked for
  std::vector<Stage> mark_stages;
  size_t marks_used = 0;

  PinnedBuffer staging, header_host, faces_host, embeddings_host;
  DeviceBuffer frames, detector_input, geometry, priors, boxes, scores, landmarks, candidate_count, decode_workspace,
      nms_workspace, kept, kept_count, slots, slot_count, packed, offsets, header, crops, embedder_input;
  std::vector<DeviceBuffer> detector_outputs, embedder_outputs;
  int32_t priors_width = -1, priors_height = -1;  // the size the priors buffer holds priors for
  int64_t priors_anchors = 0;                     // its capacity

  ~DeviceState() {
    for (cudaEvent_t e : marks) cudaEventDestroy(e);
    if (to_engine) cudaEventDestroy(to_engine);
    if (from_engine) cudaEventDestroy(from_engine);
    if (stream) cudaStreamDestroy(stream);
  }

  void Mark(Stage stage, bool timing) {
    if (!timing) return;
    if (marks_used == marks.size()) {
      cudaEvent_t e;
      Check(cudaEventCreate(&e), "cudaEventCreate");
      marks.push_back(e);
      mark_stages.push_back(stage);
    }
    mark_stages[marks_used] = stage;
    Check(cudaEventRecord(marks[marks_used++], stream), "cudaEventRecord");
  }

  // Work on `engine_stream` waits for everything enqueued on ours so far.
  void HandTo(cudaStream_t engine_stream) {
    Check(cudaEventRecord(to_engine, stream), "cudaEventRecord");
    Check(cudaStreamWaitEvent(engine_stream, to_engine, 0), "cudaStreamWaitEvent");
  }
  void TakeBack(cudaStream_t engine_stream) {
    Check(cudaEventRecord(from_engine, engine_stream), "cudaEventRecord");
    Check(cudaStreamWaitEvent(stream, from_engine, 0), "cudaStreamWaitEvent");
  }
};

CudaFacePipeline::CudaFacePipeline(std::shared_ptr<CudaEngine> detector, DetectorConfig detector_config,
                                   std::shared_ptr<CudaEngine> landmarker, LandmarkerConfig /*landmarker_config*/,
                                   std::shared_ptr<CudaEngine> embedder, EmbedderConfig embedder_config)
    : detector_(std::move(detector)),
      embedder_(std::move(embedder)),
      detector_config_(std::move(detector_config)),
      embedder_config_(std::move(embedder_config)) {
  if (!detector_) Fail(ErrorCode::Model, "A CUDA face pipeline needs a detector model");
  if (detector_config_.decoder == DecoderKind::Ssd)
    Fail(ErrorCode::Model, "The SSD detector stage runs on the CPU only: the CUDA face pipeline decodes RetinaFace priors");
  if (landmarker)
    Fail(ErrorCode::Model, "The 68-point landmark stage runs on the CPU only: the CUDA face pipeline takes no landmark model");
  detector_outputs_ = FindDetectorOutputs(detector_->inputs(), detector_->outputs(), detector_config_);
  if (detector_outputs_.landmarks < 0)
    Fail(ErrorCode::Model, "The CUDA face pipeline needs the detector's five landmarks (a landmarks output)");
  if (embedder_) {
    if (embedder_config_.uses_68)
      Fail(ErrorCode::Model, "The alignment on 68-point landmarks runs on the CPU only: the CUDA face pipeline aligns on the "
           "detector's five points");
    embedding_index_ = CheckEmbedderStage(embedder_->inputs(), embedder_->outputs(), embedder_config_, false, &embedding_size_);
    if (embedder_->options().device != detector_->options().device)
      Fail(ErrorCode::Device, "Expected the embedder on CUDA device ", detector_->options().device,
           " (the detector's) but received device ", embedder_->options().device);
  }
}

CudaFacePipeline::~CudaFacePipeline() {
  if (state_ && state_->stream) cudaStreamSynchronize(state_->stream);
}

std::vector<std::vector<PipelineFace>> CudaFacePipeline::Run(const std::vector<ImageU8>& frames, bool embed,
                                                             CudaPipelineTimes* times) {
  if (embed && !embedder_) Fail(ErrorCode::State, "This pipeline has no embedding model");
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::vector<PipelineFace>> results(frames.size());
  if (frames.empty()) return results;
  if (times) *times = CudaPipelineTimes{};
  const DetectorConfig& dc = detector_config_;
  const int32_t n_frames = static_cast<int32_t>(frames.size());

  // The engines' streams first: that checks for a usable device (E_DEVICE) before we touch it.
  cudaStream_t detector_stream = detector_->stream();
  cudaStream_t embedder_stream = embedder_ ? embedder_->stream() : nullptr;
  if (!state_) {
    auto s = std::make_unique<DeviceState>();
    s->device = detector_->options().device;
    Check(cudaSetDevice(s->device), "cudaSetDevice");
    Check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    Check(cudaEventCreateWithFlags(&s->to_engine, cudaEventDisableTiming), "cudaEventCreate");
    Check(cudaEventCreateWithFlags(&s->from_engine, cudaEventDisableTiming), "cudaEventCreate");
    state_ = std::move(s);
  }
  DeviceState& s = *state_;
  Check(cudaSetDevice(s.device), "cudaSetDevice");
  const cudaStream_t stream = s.stream;
  const bool timing = times != nullptr;
  s.marks_used = 0;

  // ---- Plan on the host: groups, network shapes, every buffer's size ----
  const bool fixed = dc.input_width > 0 && dc.input_height > 0;
  std::vector<FrameGroup> groups;
  for (size_t f = 0; f < frames.size(); ++f) {
    const int32_t w = fixed ? dc.input_width : frames[f].width, h = fixed ? dc.input_height : frames[f].height;
    if (groups.empty() || groups.back().width != w || groups.back().height != h) {
      FrameGroup g;
      g.first = f;
      g.width = w;
      g.height = h;
      groups.push_back(g);
    }
    ++groups.back().count;
  }
  int64_t max_input = 0, max_anchors = 0;
  size_t decode_bytes = 0, nms_bytes = 0;
  NmsParams nms;
  nms.iou_threshold = dc.nms_threshold;
  nms.plus_one = dc.nms_plus_one;
  nms.pre_top_k = dc.pre_nms_top_k;
  // max_faces applies after the min_face_size filter; without one it is NMS's output cap.
  nms.max_output = dc.min_face_size <= 0 && dc.max_faces > 0 ? dc.max_faces : 0;
  const size_t n_outputs = detector_->outputs().size();
  std::vector<int64_t> max_output_elements(n_outputs, 0);
  for (FrameGroup& g : groups) {
    const Shape shape{static_cast<int64_t>(g.count), 3, g.height, g.width};
    g.output_shapes = detector_->OutputShapes({shape});
    PriorParams p = dc.priors;
    p.image_width = g.width;
    p.image_height = g.height;
    const int64_t expected = PriorCount(p);
    const Shape& score_shape = g.output_shapes[detector_outputs_.scores];
    g.anchors = score_shape.size() == 3 ? score_shape[1] : -1;
    if (g.anchors != expected)
      Fail(ErrorCode::Model, "The detector produced ", g.anchors, " anchors for a ", g.width, "×", g.height,
           " input, but its descriptor gives ", expected);
    if (score_shape[2] != 2) Fail(ErrorCode::Model, "The RetinaFace detector gave ", score_shape[2], " scores per anchor, not 2");
    max_input = std::max(max_input, NumElements(shape));
    max_anchors = std::max(max_anchors, g.anchors);
    for (size_t k = 0; k < n_outputs; ++k) max_output_elements[k] = std::max(max_output_elements[k], NumElements(g.output_shapes[k]));
    decode_bytes = std::max(decode_bytes, DecodeCudaWorkspaceSize(g.anchors));
    nms_bytes = std::max(nms_bytes, NmsCudaWorkspaceSize(nms, g.anchors));
  }
  const int64_t kept_capacity = nms.max_output > 0 ? std::min<int64_t>(nms.max_output, max_anchors) : max_anchors;
  const int32_t slot_capacity = static_cast<int32_t>(
      std::max<int64_t>(1, std::min<int64_t>(kept_capacity, dc.max_faces > 0 ? dc.max_faces : kept_capacity)));

  // Frames: descriptors, then each frame's rows packed (256-byte aligned), as one upload.
  std::vector<size_t> pixel_at(frames.size());
  size_t upload_bytes = AlignUp(frames.size() * sizeof(ImageU8));
  for (size_t f = 0; f < frames.size(); ++f) {
    pixel_at[f] = upload_bytes;
    upload_bytes += AlignUp(static_cast<size_t>(frames[f].width) * frames[f].channels * frames[f].height);
  }

  uint8_t* staging = s.staging.Get<uint8_t>(upload_bytes);
  uint8_t* frames_dev = s.frames.Get<uint8_t>(upload_bytes);
  float* input = s.detector_input.Get<float>(max_input);
  LetterboxGeometry* geometry = s.geometry.Get<LetterboxGeometry>(frames.size());
  if (max_anchors > s.priors_anchors) s.priors_width = s.priors_height = -1;  // a new buffer: generate again
  s.priors_anchors = std::max(s.priors_anchors, max_anchors);
  float* priors = s.priors.Get<float>(s.priors_anchors * 4);
  float* cand_boxes = s.boxes.Get<float>(max_anchors * 4);
  float* cand_scores = s.scores.Get<float>(max_anchors);
  float* cand_landmarks = s.landmarks.Get<float>(max_anchors * 10);
  int32_t* cand_count = s.candidate_count.Get<int32_t>(1);
  void* decode_ws = s.decode_workspace.Get<uint8_t>(decode_bytes);
  void* nms_ws = s.nms_workspace.Get<uint8_t>(nms_bytes);
  int32_t* kept = s.kept.Get<int32_t>(kept_capacity);
  int32_t* kept_count = s.kept_count.Get<int32_t>(1);
  DeviceFace* slots = s.slots.Get<DeviceFace>(static_cast<size_t>(n_frames) * slot_capacity);
  int32_t* slot_count = s.slot_count.Get<int32_t>(frames.size());
  DeviceFace* packed = s.packed.Get<DeviceFace>(static_cast<size_t>(n_frames) * slot_capacity);
  int32_t* offsets = s.offsets.Get<int32_t>(frames.size());
  int32_t* header = s.header.Get<int32_t>(frames.size() + 1);
  int32_t* header_host = s.header_host.Get<int32_t>(frames.size() + 1);
  if (s.detector_outputs.size() != n_outputs) s.detector_outputs = std::vector<DeviceBuffer>(n_outputs);
  std::vector<float*> outputs(n_outputs);
  for (size_t k = 0; k < n_outputs; ++k) outputs[k] = s.detector_outputs[k].Get<float>(max_output_elements[k]);

  // ---- Upload ----
  s.Mark(kStart, timing);
  ImageU8* descriptors = reinterpret_cast<ImageU8*>(staging);
  for (size_t f = 0; f < frames.size(); ++f) {
    const ImageU8& src = frames[f];
    const size_t row = static_cast<size_t>(src.width) * src.channels;
    uint8_t* dst = staging + pixel_at[f];
    if (static_cast<size_t>(src.row_stride) == row) {
      std::memcpy(dst, src.data, row * src.height);
    } else {
      for (int32_t y = 0; y < src.height; ++y) std::memcpy(dst + y * row, src.data + y * src.row_stride, row);
    }
    ImageU8 d = src;
    d.data = frames_dev + pixel_at[f];
    d.row_stride = static_cast<int64_t>(row);
    descriptors[f] = d;
  }
  Check(cudaMemcpyAsync(frames_dev, staging, upload_bytes, cudaMemcpyHostToDevice, stream), "uploading the frames");
  const ImageU8* frames_on_device = reinterpret_cast<const ImageU8*>(frames_dev);
  s.Mark(kUpload, timing);

  // ---- Detect, decode, NMS: group by group (the network's outputs are reused) ----
  RetinaDecodeParams decode;
  decode.variance_center = dc.variance_center;
  decode.variance_size = dc.variance_size;
  decode.score_threshold = dc.score_threshold;
  for (const FrameGroup& g : groups) {
    LetterboxParams resize;
    resize.out_width = g.width;
    resize.out_height = g.height;
    resize.mode = fixed ? dc.resize : ResizeMode::Stretch;
    std::copy_n(dc.pad_rgb, 3, resize.pad_rgb);
    resize.norm = dc.norm;
    resize.norm.layout = TensorLayout::Nchw;
    ThrowIfFailed(LetterboxCuda(resize, frames_on_device + g.first, static_cast<int64_t>(g.count), input, geometry + g.first,
                                nullptr, 0, stream),
                  "letterboxing the frames");
    s.HandTo(detector_stream);
    detector_->RunDevice({DeviceInput{input, {static_cast<int64_t>(g.count), 3, g.height, g.width}}}, outputs);
    s.TakeBack(detector_stream);
    s.Mark(kDetect, timing);

    if (g.width != s.priors_width || g.height != s.priors_height) {
      PriorParams p = dc.priors;
      p.image_width = g.width;
      p.image_height = g.height;
      ThrowIfFailed(GeneratePriorsCuda(p, priors, stream), "generating priors");
      s.priors_width = g.width;
      s.priors_height = g.height;
    }
    decode.image_width = g.width;
    decode.image_height = g.height;
    const int64_t A = g.anchors;
    for (size_t k = 0; k < g.count; ++k) {
      const int32_t frame = static_cast<int32_t>(g.first + k);
      const Candidates candidates{cand_boxes, cand_scores, cand_landmarks, nullptr};
      ThrowIfFailed(DecodeRetinaFaceCuda(decode, priors, A, outputs[detector_outputs_.boxes] + k * A * 4,
                                         outputs[detector_outputs_.scores] + k * A * 2,
                                         outputs[detector_outputs_.landmarks] + k * A * 10, candidates, cand_count,
                                         decode_ws, decode_bytes, stream),
                    "decoding detections");
      ThrowIfFailed(NmsCuda(nms, cand_boxes, cand_scores, A, cand_count, kept, kept_count, nms_ws, nms_bytes, stream),
                    "non-maximum suppression");
      SelectArgs select{cand_boxes, cand_scores, cand_landmarks, kept, kept_count, geometry + frame, dc.min_face_size,
                        dc.max_faces > 0 ? std::min(dc.max_faces, slot_capacity) : slot_capacity, frame,
                        slots + static_cast<int64_t>(frame) * slot_capacity, slot_count + frame};
      SelectFacesKernel<<<1, 32, 0, stream>>>(select);
      Check(cudaGetLastError(), "selecting faces");
    }
    s.Mark(kDecodeNms, timing);
  }
  PackFacesKernel<<<1, 256, 0, stream>>>(slots, slot_count, n_frames, slot_capacity, packed, offsets, header);
  Check(cudaGetLastError(), "packing faces");
  s.Mark(kDecodeNms, timing);

  // The one read-back between stages: how many faces (the embedder's batch is a host-side shape).
  Check(cudaMemcpyAsync(header_host, header, (frames.size() + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream),
        "reading the face count");
  Check(cudaStreamSynchronize(stream), "detecting faces");
  const int64_t total = header_host[n_frames];

  // ---- Align and embed ----
  const EmbedderConfig& ec = embedder_config_;
  const int32_t views = ec.flip ? 2 : 1;
  const int64_t crop_count = total * views;
  int64_t row_length = 0;  // floats per face in the embedding download
  float* embedder_output = nullptr;
  if (embed && total > 0) {
    const int32_t W = ec.crop.out_width, H = ec.crop.out_height;
    const int64_t per_crop = 3 * static_cast<int64_t>(W) * H;
    struct EmbedRun {
      int64_t first, count, batch;  // crops [first, first + count), run as a batch of `batch`
    };
    std::vector<EmbedRun> runs;
    for (int64_t first = 0; first < crop_count; first += kMaxEmbedCrops) {
      const int64_t count = std::min(kMaxEmbedCrops, crop_count - first);
      runs.push_back({first, count, PowerOfTwoAtLeast(count)});
    }
    const int64_t rows = runs.back().first + runs.back().batch;  // crops plus the last run's padding
    // Output shapes per batch size (plans are built here, before any launch of this stage).
    const size_t n_embedder_outputs = embedder_->outputs().size();
    std::vector<int64_t> max_elements(n_embedder_outputs, 0);
    int64_t dim = 0;
    for (const EmbedRun& r : runs) {
      const std::vector<Shape> shapes = embedder_->OutputShapes({{r.batch, 3, H, W}});
      const Shape& e = shapes[embedding_index_];
      if (e.size() != 2 || e[0] != r.batch || e[1] <= 0)
        Fail(ErrorCode::Model, "The embedding model gave an output of the wrong shape");
      dim = e[1];
      for (size_t k = 0; k < n_embedder_outputs; ++k) max_elements[k] = std::max(max_elements[k], NumElements(shapes[k]));
    }
    row_length = views * dim;
    WarpCrop* crops = s.crops.Get<WarpCrop>(crop_count);
    float* crop_input = s.embedder_input.Get<float>(rows * per_crop);
    if (s.embedder_outputs.size() != n_embedder_outputs) s.embedder_outputs = std::vector<DeviceBuffer>(n_embedder_outputs);
    std::vector<float*> embed_outputs(n_embedder_outputs);
    for (size_t k = 0; k < n_embedder_outputs; ++k)
      embed_outputs[k] = s.embedder_outputs[k].Get<float>(static_cast<int64_t>(k) == embedding_index_ ? rows * dim : max_elements[k]);
    embedder_output = embed_outputs[embedding_index_];

    AlignArgs align{};
    align.faces = packed;
    align.count = total;
    align.views = views;
    align.kind = ec.alignment;
    align.template_points = static_cast<int32_t>(std::min<size_t>(ec.template_xy.size(), 10) / 2);
    std::copy_n(ec.template_xy.data(), 2 * align.template_points, align.template_xy);
    align.width = W;
    align.height = H;
    align.crops = crops;
    AlignKernel<<<GridFor(total, 128), 128, 0, stream>>>(align);
    Check(cudaGetLastError(), "aligning faces");
    ThrowIfFailed(WarpAffineBatchCuda(ec.crop, frames_on_device, crops, crop_count, crop_input, nullptr, 0, stream),
                  "cutting the aligned faces");
    if (rows > crop_count)  // the last run's padding: any finite input (rows are independent)
      Check(cudaMemsetAsync(crop_input + crop_count * per_crop, 0, (rows - crop_count) * per_crop * sizeof(float), stream),
            "clearing padding");
    s.Mark(kAlign, timing);

    s.HandTo(embedder_stream);
    for (const EmbedRun& r : runs) {
      std::vector<float*> out = embed_outputs;
      out[embedding_index_] = embedder_output + r.first * dim;
      embedder_->RunDevice({DeviceInput{crop_input + r.first * per_crop, {r.batch, 3, H, W}}}, out);
    }
    s.TakeBack(embedder_stream);
    // A face's views are adjacent rows: its embedding is one row of views · dim.
    L2NormalizeRowsKernel<<<static_cast<unsigned>(total), kNormThreads, 0, stream>>>(embedder_output, row_length);
    Check(cudaGetLastError(), "normalising embeddings");
    s.Mark(kEmbed, timing);
  }

  // ---- Download: the faces and their embeddings only ----
  DeviceFace* faces_host = s.faces_host.Get<DeviceFace>(total);
  float* embeddings_host = s.embeddings_host.Get<float>(total * row_length);
  if (total > 0)
    Check(cudaMemcpyAsync(faces_host, packed, total * sizeof(DeviceFace), cudaMemcpyDeviceToHost, stream), "downloading faces");
  if (embedder_output)
    Check(cudaMemcpyAsync(embeddings_host, embedder_output, total * row_length * sizeof(float), cudaMemcpyDeviceToHost, stream),
          "downloading embeddings");
  s.Mark(kDownload, timing);
  Check(cudaStreamSynchronize(stream), "running the face pipeline");

  for (int64_t i = 0; i < total; ++i) {
    const DeviceFace& d = faces_host[i];
    PipelineFace face;
    std::copy_n(d.box, 4, face.face.box);
    face.face.score = d.score;
    std::copy_n(d.landmarks, 10, face.face.landmarks);
    face.face.has_landmarks = true;
    if (embedder_output) face.embedding.assign(embeddings_host + i * row_length, embeddings_host + (i + 1) * row_length);
    results[d.frame].push_back(std::move(face));
  }
  if (timing) {
    double* stage_ms[] = {nullptr, &times->upload_ms, &times->detect_ms, &times->decode_nms_ms, &times->align_ms, &times->embed_ms,
                          &times->download_ms};
    for (size_t i = 1; i < s.marks_used; ++i) {
      float ms = 0;
      Check(cudaEventElapsedTime(&ms, s.marks[i - 1], s.marks[i]), "cudaEventElapsedTime");
      *stage_ms[s.mark_stages[i]] += ms;
    }
  }
  return results;
}

}  // namespace facesight
