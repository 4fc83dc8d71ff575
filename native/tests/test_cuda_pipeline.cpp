// CudaFacePipeline end to end on real networks and photos: RetinaFace-mnet0.25 + MobileFaceNet
// converted from the real weights, seven photos (one to 30 faces, one without), all written by
// `node scripts/gpu/prepare-data.mjs` into gpu-data/ (FACESIGHT_GPU_DATA), with the CPU results of the
// package's FaceEngine on the same frames (reference.json) and the native configs it used.
//
//   host   the constructor's checks (E_MODEL for each CPU-only stage, named; E_MODEL for missing outputs
//          and bad templates; E_DEVICE for engines on two devices; E_STATE for embed without an
//          embedder), then the C++ CPU FacePipeline on the photos against reference.json: the same
//          faces, box corners within 0.01 px, embeddings cosine ≥ 0.99999 (one engine, two builds).
//   device (exit 77 before this without a CUDA device) the CudaFacePipeline against the CPU pipeline,
//          with the manifest's configs (each photo at its own size), a 640×640 letterbox config (all
//          photos in one batch), max_faces / min_face_size, flip, and detection only. Faces are paired
//          by IoU; tolerances:
//            fp32  the same faces; box corners and landmarks within 1 px; cosine ≥ 0.999
//            fp16  every face scoring ≥ threshold + 0.05 found and vice versa; corners and landmarks
//                  within 2 px + 2 % of the box side; cosine ≥ 0.99 (weights and activations rounded to
//                  fp16 in both networks, and the crop moves with the landmarks)
//          the same against reference.json; a second run bitwise equal to the first.
// Without gpu-data/ the test skips (exit 77), or fails under FACESIGHT_REQUIRE_DATA=1.
// Timings (FACESIGHT_GPU_BENCH, as the other GPU tests): per-stage p50 / p99 and throughput for 1, 8, 32
// and 64 frames at 640×640 (the photos repeated), fp32 and fp16: rows of the GPU timing table.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "common/error.h"
#include "engine/cuda_engine.h"
#include "engine/engine.h"
#include "pipeline/cuda_face_pipeline.h"
#include "pipeline/detector.h"
#include "pipeline/face_pipeline.h"
#include "cuda_test_util.h"
#include "face_networks.h"
#include "json_value.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

namespace {

constexpr const char* kTest = "test_cuda_pipeline";

const char* PrecisionName(CudaPrecision p) { return p == CudaPrecision::kFp16 ? "fp16" : "fp32"; }

template <typename F>
void ExpectError(ErrorCode code, const std::string& part, const char* what, F f) {
  try {
    f();
    CHECK(false, "%s: no error", what);
  } catch (const FaceException& e) {
    CHECK(e.code() == code && std::string(e.what()).find(part) != std::string::npos, "%s: code %s, message: %s", what,
          ErrorCodeName(e.code()), e.what());
  }
}

std::shared_ptr<CudaEngine> LoadCuda(const std::vector<uint8_t>& bytes, CudaPrecision precision, int device = 0) {
  CudaEngineOptions o;
  o.precision = precision;
  o.device = device;
  return CudaEngine::Load(bytes.data(), bytes.size(), o);
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// ---- The configs FaceEngine passed (manifest.json), as addon.cpp reads them ---------------------------

void ReadCropInput(const JsonValue& c, WarpParams& crop) {
  crop.out_width = static_cast<int32_t>(c["inputWidth"].Number());
  crop.out_height = static_cast<int32_t>(c["inputHeight"].Number());
  crop.norm.order = c["colorOrder"].String() == "BGR" ? ColorOrder::Bgr : ColorOrder::Rgb;
  crop.norm.layout = TensorLayout::Nchw;
  for (size_t k = 0; k < 3; ++k) {
    crop.norm.mean[k] = static_cast<float>(c["mean"][k].Number());
    crop.norm.std[k] = static_cast<float>(c["std"][k].Number());
    crop.border_rgb[k] = static_cast<float>(c["padValue"][k].Number());
  }
}

DetectorConfig ReadDetectorConfig(const JsonValue& c) {
  DetectorConfig config;
  config.input_width = static_cast<int32_t>(c["inputWidth"].Number());
  config.input_height = static_cast<int32_t>(c["inputHeight"].Number());
  const std::string resize = c["resizeMode"].String();
  config.resize = resize == "stretch" ? ResizeMode::Stretch : resize == "pad-square" ? ResizeMode::PadSquare : ResizeMode::Letterbox;
  config.decoder = c["decoder"].String() == "ssd" ? DecoderKind::Ssd : DecoderKind::RetinaFace;
  config.nms_plus_one = c["nmsPlusOne"].Bool();
  config.norm.order = c["colorOrder"].String() == "BGR" ? ColorOrder::Bgr : ColorOrder::Rgb;
  for (size_t k = 0; k < 3; ++k) {
    config.pad_rgb[k] = static_cast<float>(c["padValue"][k].Number());
    config.norm.mean[k] = static_cast<float>(c["mean"][k].Number());
    config.norm.std[k] = static_cast<float>(c["std"][k].Number());
  }
  config.priors.num_levels = static_cast<int32_t>(std::min<size_t>(c["steps"].size(), kMaxPriorLevels));
  for (int32_t l = 0; l < config.priors.num_levels; ++l) {
    PriorLevel& level = config.priors.levels[l];
    level.step = static_cast<int32_t>(c["steps"][l].Number());
    level.num_sizes = static_cast<int32_t>(std::min<size_t>(c["minSizes"][l].size(), kMaxPriorSizes));
    for (int32_t k = 0; k < level.num_sizes; ++k) level.min_sizes[k] = static_cast<float>(c["minSizes"][l][k].Number());
  }
  config.priors.clip = c["clip"].Bool();
  config.variance_center = static_cast<float>(c["variances"][0].Number());
  config.variance_size = static_cast<float>(c["variances"][1].Number());
  config.score_threshold = static_cast<float>(c["scoreThreshold"].Number());
  config.nms_threshold = static_cast<float>(c["nmsThreshold"].Number());
  config.max_faces = static_cast<int32_t>(c["maxFaces"].Number());
  config.pre_nms_top_k = static_cast<int32_t>(c["preNmsTopK"].Number());
  config.min_face_size = static_cast<float>(c["minFaceSize"].Number());
  config.boxes_output = c["boxesOutput"].String();
  config.scores_output = c["scoresOutput"].String();
  config.landmarks_output = c["landmarksOutput"].String();
  return config;
}

EmbedderConfig ReadEmbedderConfig(const JsonValue& c) {
  EmbedderConfig config;
  ReadCropInput(c, config.crop);
  config.output = c["output"].String();
  const std::string alignment = c["alignment"].String();
  config.alignment = alignment == "similarity" ? AlignmentKind::Similarity
                     : alignment == "eye-line" ? AlignmentKind::EyeLine
                                               : AlignmentKind::None;
  config.template_xy = c["template"].Floats();
  config.uses_68 = c["uses68"].Bool();
  config.first_point = static_cast<int32_t>(c["firstPoint"].Number());
  config.flip = c["flip"].Bool();
  return config;
}

// ---- Test data -----------------------------------------------------------------------------------------

struct Photo {
  std::string name;
  std::vector<uint8_t> pixels;
  ImageU8 frame;
};

struct TestData {
  std::vector<uint8_t> detector_onnx, embedder_onnx;
  DetectorConfig detector;
  EmbedderConfig embedder;
  std::vector<Photo> photos;
  std::vector<std::vector<PipelineFace>> reference;  // FaceEngine's faces per photo
};

// False after a message when gpu-data is missing or incomplete (a CHECK failure when `required`).
bool LoadData(TestData& data, bool required) {
  const char* env = std::getenv("FACESIGHT_GPU_DATA");
  const std::string dir = env && *env ? env : "gpu-data";
  auto missing = [&](const std::string& what) {
    std::string message = what + " (run `node scripts/gpu/prepare-data.mjs` where Node.js is, carry gpu-data to the GPU "
                          "machine, and set FACESIGHT_GPU_DATA to it; now '" + dir + "')";
    if (required) CHECK(false, "%s", message.c_str());
    else std::printf("%s: skipped, %s\n", kTest, message.c_str());
    return false;
  };
  bool found = false;
  const JsonValue manifest = JsonValue::ParseFile(dir + "/manifest.json", &found);
  if (!found) return missing("no " + dir + "/manifest.json");
  const JsonValue reference = JsonValue::ParseFile(dir + "/reference.json", &found);
  if (!found) return missing("no " + dir + "/reference.json");
  data.detector_onnx = ReadBytes(dir + "/" + manifest["detector"]["file"].String());
  data.embedder_onnx = ReadBytes(dir + "/" + manifest["embedder"]["file"].String());
  if (data.detector_onnx.empty() || data.embedder_onnx.empty()) return missing("a model file missing in " + dir);
  data.detector = ReadDetectorConfig(manifest["detector"]["config"]);
  data.embedder = ReadEmbedderConfig(manifest["embedder"]["config"]);
  const JsonValue& photos = manifest["photos"];
  data.photos.resize(photos.size());
  for (size_t i = 0; i < photos.size(); ++i) {
    Photo& p = data.photos[i];
    p.name = photos[i]["name"].String();
    p.pixels = ReadBytes(dir + "/" + photos[i]["file"].String());
    p.frame.width = static_cast<int32_t>(photos[i]["width"].Number());
    p.frame.height = static_cast<int32_t>(photos[i]["height"].Number());
    p.frame.channels = static_cast<int32_t>(photos[i]["channels"].Number());
    p.frame.row_stride = static_cast<int64_t>(p.frame.width) * p.frame.channels;
    if (p.pixels.size() != static_cast<size_t>(p.frame.row_stride) * p.frame.height) return missing(p.name + "'s pixels have the wrong size");
    p.frame.data = p.pixels.data();
    std::vector<PipelineFace> faces;
    const JsonValue& ref = reference["photos"][i];
    if (ref["name"].String() != p.name) return missing("reference.json does not follow the manifest's photos");
    for (size_t k = 0; k < ref["faces"].size(); ++k) {
      const JsonValue& f = ref["faces"][k];
      PipelineFace face;
      const std::vector<float> box = f["box"].Floats(), landmarks = f["landmarks"].Floats();
      std::copy_n(box.begin(), 4, face.face.box);
      std::copy_n(landmarks.begin(), 10, face.face.landmarks);
      face.face.has_landmarks = true;
      face.face.score = static_cast<float>(f["score"].Number());
      face.embedding = f["embedding"].Floats();
      faces.push_back(face);
    }
    data.reference.push_back(faces);
  }
  std::printf("gpu data: %s, %zu photos\n", dir.c_str(), data.photos.size());
  return true;
}

std::vector<ImageU8> Frames(const TestData& data) {
  std::vector<ImageU8> frames;
  for (const Photo& p : data.photos) frames.push_back(p.frame);
  return frames;
}

// ---- Comparing faces -----------------------------------------------------------------------------------

struct Tolerance {
  double px = 0, px_relative = 0;  // box corners and landmarks: px + px_relative · box side
  double cosine = 1;
  double score_margin = 0;  // faces scoring within this of the threshold may be missing on one side
};

double Iou(const float* a, const float* b) {
  const double w = std::max(0.0, std::min<double>(a[2], b[2]) - std::max<double>(a[0], b[0]));
  const double h = std::max(0.0, std::min<double>(a[3], b[3]) - std::max<double>(a[1], b[1]));
  const double i = w * h, u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - i;
  return u > 0 ? i / u : 0;
}

double Cosine(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || a.empty()) return -2;
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  return ab / std::sqrt(aa * bb + 1e-30);
}

struct Worst {
  double px = 0, cosine = 1;
  int faces = 0;
};

// Pairs each expected face with the unpaired actual face of highest IoU (≥ 0.5) and checks it.
void CompareFaces(const char* what, const std::string& photo, const std::vector<PipelineFace>& actual,
                  const std::vector<PipelineFace>& expected, float threshold, bool embedded, const Tolerance& tol, Worst& worst) {
  std::vector<bool> used(actual.size(), false);
  for (size_t e = 0; e < expected.size(); ++e) {
    const DetectedFace& x = expected[e].face;
    int best = -1;
    double best_iou = 0.5;
    for (size_t a = 0; a < actual.size(); ++a) {
      const double iou = used[a] ? 0 : Iou(actual[a].face.box, x.box);
      if (iou >= best_iou) best_iou = iou, best = static_cast<int>(a);
    }
    if (best < 0) {
      CHECK(x.score < threshold + tol.score_margin, "%s %s: expected face %zu (score %.4f, box %.1f %.1f %.1f %.1f) not found", what,
            photo.c_str(), e, x.score, x.box[0], x.box[1], x.box[2], x.box[3]);
      continue;
    }
    used[best] = true;
    const DetectedFace& y = actual[best].face;
    const double side = std::max(x.box[2] - x.box[0], x.box[3] - x.box[1]);
    const double bound = tol.px + tol.px_relative * side;
    double px = 0;
    for (int c = 0; c < 4; ++c) px = std::max(px, std::fabs(double(y.box[c]) - x.box[c]));
    for (int c = 0; c < 10; ++c) px = std::max(px, std::fabs(double(y.landmarks[c]) - x.landmarks[c]));
    worst.px = std::max(worst.px, px);
    ++worst.faces;
    CHECK(px <= bound, "%s %s face %zu: box / landmarks off by %.3f px > %.3f", what, photo.c_str(), e, px, bound);
    CHECK(std::fabs(y.score - x.score) <= std::max(1e-3, tol.score_margin), "%s %s face %zu: score %.5f vs %.5f", what,
          photo.c_str(), e, y.score, x.score);
    if (embedded) {
      const double c = Cosine(actual[best].embedding, expected[e].embedding);
      worst.cosine = std::min(worst.cosine, c);
      CHECK(c >= tol.cosine, "%s %s face %zu: embedding cosine %.6f < %.6f (lengths %zu, %zu)", what, photo.c_str(), e, c, tol.cosine,
            actual[best].embedding.size(), expected[e].embedding.size());
    }
  }
  for (size_t a = 0; a < actual.size(); ++a)
    CHECK(used[a] || actual[a].face.score < threshold + tol.score_margin, "%s %s: extra face (score %.4f, box %.1f %.1f %.1f %.1f)",
          what, photo.c_str(), actual[a].face.score, actual[a].face.box[0], actual[a].face.box[1], actual[a].face.box[2],
          actual[a].face.box[3]);
  for (size_t k = 1; k < actual.size(); ++k)
    CHECK(actual[k - 1].face.score >= actual[k].face.score, "%s %s: faces not by descending score", what, photo.c_str());
}

// The photo a frame shows (frames point into the photos' pixels).
std::string NameOf(const TestData& data, const ImageU8& frame) {
  for (const Photo& p : data.photos)
    if (p.frame.data == frame.data) return p.name;
  return "?";
}

void CompareAll(const char* what, const std::vector<std::string>& names, const std::vector<std::vector<PipelineFace>>& actual,
                const std::vector<std::vector<PipelineFace>>& expected, float threshold, bool embedded, const Tolerance& tol) {
  Worst worst;
  CHECK(actual.size() == expected.size(), "%s: %zu frames, expected %zu", what, actual.size(), expected.size());
  for (size_t f = 0; f < actual.size() && f < expected.size(); ++f)
    CompareFaces(what, f < names.size() ? names[f] : "?", actual[f], expected[f], threshold, embedded, tol, worst);
  std::printf("%s: %d faces paired, worst %.4f px", what, worst.faces, worst.px);
  if (embedded) std::printf(", min cosine %.6f", worst.cosine);
  std::printf("\n");
}

bool BitwiseEqual(const std::vector<std::vector<PipelineFace>>& a, const std::vector<std::vector<PipelineFace>>& b) {
  if (a.size() != b.size()) return false;
  for (size_t f = 0; f < a.size(); ++f) {
    if (a[f].size() != b[f].size()) return false;
    for (size_t k = 0; k < a[f].size(); ++k) {
      const PipelineFace &x = a[f][k], &y = b[f][k];
      if (std::memcmp(x.face.box, y.face.box, sizeof x.face.box) || x.face.score != y.face.score ||
          std::memcmp(x.face.landmarks, y.face.landmarks, sizeof x.face.landmarks) || x.embedding != y.embedding)
        return false;
    }
  }
  return true;
}

// ---- The CPU pipeline ----------------------------------------------------------------------------------

struct CpuPipeline {
  std::shared_ptr<ThreadPool> pool;
  std::unique_ptr<FacePipeline> pipeline;
};

CpuPipeline MakeCpu(const TestData& data, const DetectorConfig& detector, const EmbedderConfig& embedder) {
  CpuPipeline p;
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  p.pool = std::make_shared<ThreadPool>(threads);
  EngineOptions options;
  options.threads = threads;
  options.pool = p.pool;
  std::shared_ptr<Engine> det = Engine::Load(data.detector_onnx.data(), data.detector_onnx.size(), options);
  std::shared_ptr<Engine> emb = Engine::Load(data.embedder_onnx.data(), data.embedder_onnx.size(), options);
  p.pipeline = std::make_unique<FacePipeline>(std::make_shared<Detector>(det, detector), nullptr, LandmarkerConfig{}, emb, embedder, p.pool);
  return p;
}

// ---- Host only -----------------------------------------------------------------------------------------

void TestConstructorOnHost() {
  // Random-weight networks of the real shapes (face_networks.h); nothing here touches a device.
  const std::vector<uint8_t> retina = RetinaFaceMnet025Onnx(3), facenet = FaceNetMobileNetV1Onnx(4);
  auto det = LoadCuda(retina, CudaPrecision::kFp32);
  auto emb = LoadCuda(facenet, CudaPrecision::kFp32);
  DetectorConfig dc;
  dc.priors = RetinaFacePriorParams(0, 0);
  dc.boxes_output = det->outputs()[0].name;
  dc.scores_output = det->outputs()[1].name;
  dc.landmarks_output = det->outputs()[2].name;
  EmbedderConfig ec;
  ec.crop.out_width = ec.crop.out_height = 160;
  ec.output = emb->outputs()[0].name;
  ec.template_xy = {30.3f, 51.7f, 65.5f, 51.5f, 48.0f, 71.7f, 33.5f, 92.4f, 62.7f, 92.2f};

  CudaFacePipeline ok(det, dc, nullptr, LandmarkerConfig{}, emb, ec);
  const auto& dims = emb->outputs()[0].dims;  // the length when the model states it, else 0
  CHECK(ok.embedding_size() == (dims.size() == 2 && dims[1].value > 0 ? dims[1].value : 0), "embedding size %d", ok.embedding_size());

  DetectorConfig ssd = dc;
  ssd.decoder = DecoderKind::Ssd;
  ExpectError(ErrorCode::Model, "SSD detector stage runs on the CPU only", "SSD detector",
              [&] { CudaFacePipeline p(det, ssd, nullptr, LandmarkerConfig{}, emb, ec); });
  ExpectError(ErrorCode::Model, "68-point landmark stage runs on the CPU only", "a landmark model",
              [&] { CudaFacePipeline p(det, dc, emb, LandmarkerConfig{}, emb, ec); });
  EmbedderConfig on68 = ec;
  on68.uses_68 = true;
  on68.first_point = 17;
  ExpectError(ErrorCode::Model, "alignment on 68-point landmarks runs on the CPU only", "a 68-point template",
              [&] { CudaFacePipeline p(det, dc, nullptr, LandmarkerConfig{}, emb, on68); });
  EmbedderConfig four = ec;
  four.template_xy.resize(8);
  ExpectError(ErrorCode::Model, "needs 5 points, not 4", "a four-point template",
              [&] { CudaFacePipeline p(det, dc, nullptr, LandmarkerConfig{}, emb, four); });
  ExpectError(ErrorCode::Model, "lacks an output named", "a detector without the outputs",
              [&] { CudaFacePipeline p(emb, dc, nullptr, LandmarkerConfig{}, nullptr, ec); });
  auto other_device = LoadCuda(facenet, CudaPrecision::kFp32, 1);
  ExpectError(ErrorCode::Device, "Expected the embedder on CUDA device 0", "engines on two devices",
              [&] { CudaFacePipeline p(det, dc, nullptr, LandmarkerConfig{}, other_device, ec); });
  CudaFacePipeline detect_only(det, dc, nullptr, LandmarkerConfig{}, nullptr, ec);
  ExpectError(ErrorCode::State, "no embedding model", "embed without an embedder",
              [&] { detect_only.Run({}, true); });
  CHECK(detect_only.Run({}, false).empty(), "no frames: no lists");
}

// The C++ CPU pipeline on the photos equals FaceEngine's (the same code, another build).
void TestCpuAgainstReference(const TestData& data) {
  CpuPipeline cpu = MakeCpu(data, data.detector, data.embedder);
  const auto t0 = std::chrono::steady_clock::now();
  const auto faces = cpu.pipeline->Run(Frames(data), true);
  std::printf("CPU pipeline: %.2f s for %zu photos\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
              data.photos.size());
  Tolerance tol;
  tol.px = 0.01;
  tol.cosine = 0.99999;
  std::vector<std::string> names;
  for (const Photo& p : data.photos) names.push_back(p.name);
  CompareAll("CPU vs reference.json", names, faces, data.reference, data.detector.score_threshold, true, tol);
}

// ---- On the device -------------------------------------------------------------------------------------

Tolerance ToleranceFor(CudaPrecision precision) {
  Tolerance t;
  if (precision == CudaPrecision::kFp32) {
    t.px = 1;
    t.cosine = 0.999;
  } else {
    t.px = 2;
    t.px_relative = 0.02;
    t.cosine = 0.99;
    t.score_margin = 0.05;
  }
  return t;
}

void CheckVariant(const char* name, const TestData& data, CudaPrecision precision, const DetectorConfig& dc, const EmbedderConfig& ec,
                  bool embed, const std::vector<ImageU8>& frames, const std::vector<std::vector<PipelineFace>>* reference) {
  char what[160];
  std::snprintf(what, sizeof what, "%s %s", name, PrecisionName(precision));
  CpuPipeline cpu = MakeCpu(data, dc, ec);
  const auto expected = cpu.pipeline->Run(frames, embed);
  CudaFacePipeline gpu(LoadCuda(data.detector_onnx, precision), dc, nullptr, LandmarkerConfig{},
                       LoadCuda(data.embedder_onnx, precision), ec);
  std::vector<std::vector<PipelineFace>> first, second;
  try {
    first = gpu.Run(frames, embed);
    second = gpu.Run(frames, embed);
  } catch (const FaceException& e) {
    CHECK(false, "%s: %s", what, e.what());
    return;
  }
  const Tolerance tol = ToleranceFor(precision);
  std::vector<std::string> names;
  for (const ImageU8& f : frames) names.push_back(NameOf(data, f));
  CompareAll((std::string(what) + " vs CPU").c_str(), names, first, expected, dc.score_threshold, embed, tol);
  if (reference) CompareAll((std::string(what) + " vs reference.json").c_str(), names, first, *reference, dc.score_threshold, embed, tol);
  CHECK(BitwiseEqual(first, second), "%s: a second run differs from the first", what);
  if (embed)
    for (const auto& list : first)
      for (const PipelineFace& f : list)
        CHECK(static_cast<int32_t>(f.embedding.size()) == gpu.embedding_size(), "%s: embedding length %zu, expected %d", what,
              f.embedding.size(), gpu.embedding_size());
}

void TestOnDevice(const TestData& data) {
  const std::vector<ImageU8> frames = Frames(data);
  for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) {
    // The engine's configs: each photo at its own size, one network run per photo.
    CheckVariant("manifest", data, precision, data.detector, data.embedder, true, frames, &data.reference);
    // Frames of one size run as one batch: 512×512 twice in a row.
    std::vector<ImageU8> same_size;
    for (const Photo& p : data.photos)
      if (p.frame.width == 512 && p.frame.height == 512) same_size.push_back(p.frame);
    same_size.push_back(same_size.front());
    CheckVariant("512x512 batch", data, precision, data.detector, data.embedder, true, same_size, nullptr);
    // A fixed 640×640 letterbox: every photo in one network run.
    DetectorConfig fixed = data.detector;
    fixed.input_width = fixed.input_height = 640;
    fixed.resize = ResizeMode::Letterbox;
    CheckVariant("640x640 letterbox", data, precision, fixed, data.embedder, true, frames, nullptr);
    // The face selection after NMS: a size floor and a cap (the 30-face group photo reaches both).
    DetectorConfig capped = data.detector;
    capped.min_face_size = 40;
    capped.max_faces = 5;
    capped.pre_nms_top_k = 1000;
    CheckVariant("min 40 px, max 5, top 1000", data, precision, capped, data.embedder, true, frames, nullptr);
    // Test-time flip: both crops embedded, concatenated, normalised together.
    EmbedderConfig flip = data.embedder;
    flip.flip = true;
    CheckVariant("flip", data, precision, data.detector, flip, true, frames, nullptr);
    // The other alignments, and detection only.
    EmbedderConfig eye = data.embedder;
    eye.alignment = AlignmentKind::EyeLine;
    CheckVariant("eye-line", data, precision, data.detector, eye, true, frames, nullptr);
    CheckVariant("detect only", data, precision, data.detector, data.embedder, false, frames, nullptr);
  }
}

// ---- Timings -------------------------------------------------------------------------------------------

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(std::ceil(v.size() * q)) - 1)];
}

// The photos repeated to N frames, at 640×640 letterbox (one detector run per batch), detect + embed;
// wall clock per Run and the stages' CUDA-event times, after 3 warm-up runs, 10–100 runs up to 2 s.
void BenchPipeline(const TestData& data, CudaPrecision precision) {
  DetectorConfig dc = data.detector;
  dc.input_width = dc.input_height = 640;
  dc.resize = ResizeMode::Letterbox;
  CudaFacePipeline gpu(LoadCuda(data.detector_onnx, precision), dc, nullptr, LandmarkerConfig{}, LoadCuda(data.embedder_onnx, precision),
                       data.embedder);
  for (int N : {1, 8, 32, 64}) {
    std::vector<ImageU8> frames;
    for (int i = 0; i < N; ++i) frames.push_back(data.photos[i % data.photos.size()].frame);
    size_t faces = 0;
    for (int i = 0; i < 3; ++i) {
      faces = 0;
      for (const auto& list : gpu.Run(frames, true)) faces += list.size();
    }
    std::vector<double> total, stage[6];
    const auto start = std::chrono::steady_clock::now();
    while (total.size() < 10 || (total.size() < 100 && std::chrono::steady_clock::now() - start < std::chrono::seconds(2))) {
      CudaPipelineTimes t;
      const auto t0 = std::chrono::steady_clock::now();
      gpu.Run(frames, true, &t);
      total.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      const double ms[6] = {t.upload_ms, t.detect_ms, t.decode_nms_ms, t.align_ms, t.embed_ms, t.download_ms};
      for (int s = 0; s < 6; ++s) stage[s].push_back(ms[s]);
    }
    static const char* kStages[6] = {"upload", "detect", "decode+nms", "align", "embed", "download"};
    char kernel[64], size[96], rate[64];
    std::snprintf(size, sizeof size, "N=%d 640x640 letterbox, %zu faces", N, faces);
    for (int s = 0; s < 6; ++s) {
      std::snprintf(kernel, sizeof kernel, "pipeline %s %s", PrecisionName(precision), kStages[s]);
      std::snprintf(rate, sizeof rate, "p99 %.3f ms", Percentile(stage[s], 0.99));
      Row(kernel, size, Percentile(stage[s], 0.5), rate);
    }
    const double p50 = Percentile(total, 0.5);
    std::snprintf(kernel, sizeof kernel, "pipeline %s total", PrecisionName(precision));
    std::snprintf(rate, sizeof rate, "p99 %.2f ms, %.0f img/s", Percentile(total, 0.99), N / p50 * 1e3);
    Row(kernel, size, p50, rate);
  }
}

}  // namespace

int main(int argc, char** argv) {
  TestConstructorOnHost();
  // gpu-data is made by scripts/gpu/prepare-data.mjs for GPU runs: FACESIGHT_REQUIRE_DATA=1 makes its
  // absence a failure only where the test would use it on a device (a CPU-only CI skips, as it skips
  // every GPU test); the host part still runs whenever the folder is there.
  const bool gpu = GpuUsable(kTest);
  const char* require = std::getenv("FACESIGHT_REQUIRE_DATA");
  TestData data;
  const bool have_data = LoadData(data, gpu && require && std::string(require) == "1");
  if (have_data) TestCpuAgainstReference(data);
  if (Failures()) return Finish(kTest);
  if (!have_data || !gpu) return 77;
  const bool bench = BenchRequested(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  TestOnDevice(data);
  std::printf("correctness: %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (bench && Failures() == 0) {
    TimingHeader("face pipeline: host frames in, faces and embeddings out; wall p50 of 10–100 runs, stages by CUDA events");
    for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) BenchPipeline(data, precision);
  }
  return Finish(kTest);
}
