#include "pipeline/face_pipeline.h"

#include <algorithm>
#include <cmath>

#include "common/error.h"

namespace facesight {

namespace {

constexpr double kPi = 3.14159265358979323846;

// Source → crop for a square of side `side` whose corner is (ox, oy), turned by −angle about its
// centre, sampled the TensorFlow legacy way (crop pixel u reads the square at u · side / size).
AffineMatrix SquareCrop(double ox, double oy, double side, double angle, int32_t width, int32_t height) {
  const double sx = side / width, sy = side / height;
  const double c = std::cos(angle), s = std::sin(angle);
  const double cx = ox + side / 2, cy = oy + side / 2;
  // u = (R(−angle)(x − centre) + side / 2) / scale
  AffineMatrix m;
  m.m[0] = static_cast<float>(c / sx);
  m.m[1] = static_cast<float>(s / sx);
  m.m[2] = static_cast<float>((-(c * cx + s * cy) + side / 2) / sx);
  m.m[3] = static_cast<float>(-s / sy);
  m.m[4] = static_cast<float>(c / sy);
  m.m[5] = static_cast<float>((-(-s * cx + c * cy) + side / 2) / sy);
  return m;
}

void L2Normalize(float* v, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(v[i]) * v[i];
  const float inv = sum > 0 ? static_cast<float>(1.0 / std::sqrt(sum)) : 0.f;
  for (int64_t i = 0; i < n; ++i) v[i] *= inv;
}

}  // namespace

int FindStageOutput(const std::vector<ValueInfo>& outputs, const std::string& name, const char* stage) {
  for (size_t k = 0; k < outputs.size(); ++k)
    if (outputs[k].name == name) return static_cast<int>(k);
  if (outputs.size() == 1) return 0;  // a one-output model exported under another name
  Fail(ErrorCode::Model, "The ", stage, " model has no output named '", name, "'");
}

int CheckEmbedderStage(const std::vector<ValueInfo>& inputs, const std::vector<ValueInfo>& outputs,
                       const EmbedderConfig& e, bool has_landmarker, int32_t* embedding_size) {
  if (inputs.size() != 1) Fail(ErrorCode::Model, "An embedding model must have exactly one input");
  const int index = FindStageOutput(outputs, e.output, "embedding");
  const auto& dims = outputs[index].dims;
  *embedding_size = dims.size() == 2 && dims[1].value > 0 ? static_cast<int32_t>(dims[1].value) * (e.flip ? 2 : 1) : 0;
  if (e.alignment == AlignmentKind::Similarity) {
    const size_t points = e.template_xy.size() / 2;
    if (points < 2 || e.template_xy.size() % 2) Fail(ErrorCode::Model, "A similarity alignment needs a template of at least two points");
    if (e.uses_68 && (e.first_point < 0 || e.first_point + points > 68))
      Fail(ErrorCode::Model, "The alignment template covers 68-point landmarks ", e.first_point, "–",
           e.first_point + points - 1, ", past the 68");
    if (!e.uses_68 && points != 5) Fail(ErrorCode::Model, "A five-point alignment template needs 5 points, not ", points);
    if (e.uses_68 && !has_landmarker)
      Fail(ErrorCode::Model, "The alignment template is on 68-point landmarks, but the pipeline has no landmark model");
  }
  return index;
}

void FivePointsFrom68(const float* p, float* five) {
  for (int axis = 0; axis < 2; ++axis) {
    float left = 0, right = 0;
    for (int i = 36; i < 42; ++i) left += p[2 * i + axis];
    for (int i = 42; i < 48; ++i) right += p[2 * i + axis];
    five[0 + axis] = left / 6;
    five[2 + axis] = right / 6;
    five[4 + axis] = p[2 * 30 + axis];
    five[6 + axis] = p[2 * 48 + axis];
    five[8 + axis] = p[2 * 54 + axis];
  }
}

FacePipeline::FacePipeline(std::shared_ptr<Detector> detector, std::shared_ptr<Engine> landmarker,
                           LandmarkerConfig landmarker_config, std::shared_ptr<Engine> embedder,
                           EmbedderConfig embedder_config, std::shared_ptr<ThreadPool> pool)
    : detector_(std::move(detector)),
      landmarker_(std::move(landmarker)),
      embedder_(std::move(embedder)),
      landmarker_config_(std::move(landmarker_config)),
      embedder_config_(std::move(embedder_config)),
      pool_(std::move(pool)) {
  if (landmarker_) {
    if (landmarker_->inputs().size() != 1) Fail(ErrorCode::Model, "A landmark model must have exactly one input");
    landmarks_index_ = FindStageOutput(landmarker_->outputs(), landmarker_config_.output, "landmark");
  }
  if (embedder_)
    embedding_index_ = CheckEmbedderStage(embedder_->inputs(), embedder_->outputs(), embedder_config_, landmarker_ != nullptr,
                                          &embedding_size_);
}

void FacePipeline::RunLandmarks(const std::vector<ImageU8>& frames, std::vector<std::vector<PipelineFace>>& faces) {
  const LandmarkerConfig& c = landmarker_config_;
  const WarpParams& warp = c.crop;
  const int32_t W = warp.out_width, H = warp.out_height;
  struct Job {
    PipelineFace* face;
    WarpCrop crop;
    AffineMatrix to_source;  // crop input pixels (continuous) → source
  };
  std::vector<Job> jobs;
  for (size_t f = 0; f < frames.size(); ++f) {
    for (PipelineFace& face : faces[f]) {
      // As face-api: the box cut to the frame and floored, padded to a centred square.
      const float* b = face.face.box;
      const double x = std::max(0.f, b[0]), y = std::max(0.f, b[1]);
      const double w = std::floor(std::min<double>(b[2] - x, frames[f].width - x));
      const double h = std::floor(std::min<double>(b[3] - y, frames[f].height - y));
      const double bx = std::floor(x), by = std::floor(y);
      if (!(w >= 1 && h >= 1)) continue;  // nothing of the face inside the frame
      const double side = std::max(w, h);
      Job job;
      job.face = &face;
      job.crop.frame = static_cast<int32_t>(f);
      // face-api's padToSquare appends round(difference / 2) and prepends the rest; the landmarks map
      // back by the exact half, as its postprocessing does.
      const double before_x = (side - w) - std::round((side - w) / 2), before_y = (side - h) - std::round((side - h) / 2);
      job.crop.matrix = SquareCrop(bx - before_x, by - before_y, side, 0, W, H);
      job.crop.clip_x0 = static_cast<int32_t>(bx);
      job.crop.clip_y0 = static_cast<int32_t>(by);
      job.crop.clip_x1 = static_cast<int32_t>(bx + w);
      job.crop.clip_y1 = static_cast<int32_t>(by + h);
      job.to_source = InvertAffine(SquareCrop(bx - (side - w) / 2, by - (side - h) / 2, side, 0, W, H));
      jobs.push_back(job);
    }
  }
  const int64_t per_crop = 3 * static_cast<int64_t>(W) * H;
  const int64_t chunk = kMaxBatch;

  auto run = [&](std::vector<Job>& list) {
    std::vector<WarpCrop> crops;
    for (size_t first = 0; first < list.size(); first += chunk) {
      const int64_t n = std::min<int64_t>(chunk, list.size() - first);
      crops.clear();
      for (int64_t k = 0; k < n; ++k) crops.push_back(list[first + k].crop);
      input_.resize(n * per_crop);
      WarpAffineBatch(warp, frames.data(), crops.data(), n, input_.data(), pool_.get());
      std::vector<OutputTensor> out = landmarker_->Run({InputView{input_.data(), {n, 3, H, W}}});
      const OutputTensor& points = out[landmarks_index_];
      if (points.size() != n * 136)
        Fail(ErrorCode::Model, "The landmark model gave ", points.size() / std::max<int64_t>(n, 1), " values per face, not 136");
      for (int64_t k = 0; k < n; ++k) {
        Job& job = list[first + k];
        std::vector<float>& p = job.face->landmarks68;
        p.resize(136);
        for (int i = 0; i < 68; ++i) {
          p[2 * i] = points.data.get()[k * 136 + 2 * i] * W;
          p[2 * i + 1] = points.data.get()[k * 136 + 2 * i + 1] * H;
        }
        TransformPoints(job.to_source, p.data(), 68, p.data());
      }
    }
  };
  run(jobs);

  if (c.any_rotation && !jobs.empty()) {
    // Upright, sideways or upside down: the net, trained on upright faces, answers every crop with
    // an upright-looking face, so its eye line says nothing about a quarter turn. What does is
    // equivariance: turned by ±kTilt, a crop in the right quarter gives eye lines that agree in
    // source coordinates; in a wrong quarter they follow the crop and differ by 2·kTilt.
    constexpr double kTilt = 20 * kPi / 180, kPreferUpright = 10 * kPi / 180;
    std::vector<PipelineFace> probes(jobs.size() * 8);
    std::vector<Job> probe_jobs;
    for (size_t j = 0; j < jobs.size(); ++j) {
      const AffineMatrix& t = jobs[j].to_source;
      const double ox = t.m[2], oy = t.m[5], side = t.m[0] * W;
      for (int k = 0; k < 8; ++k) {
        Job probe = jobs[j];
        probe.face = &probes[j * 8 + k];
        probe.crop.matrix = SquareCrop(ox, oy, side, (k / 2) * kPi / 2 + (k % 2 ? kTilt : -kTilt), W, H);
        probe.crop.clip_x0 = probe.crop.clip_y0 = 0;
        probe.crop.clip_x1 = probe.crop.clip_y1 = INT32_MAX;
        probe.to_source = InvertAffine(probe.crop.matrix);
        probe_jobs.push_back(probe);
      }
    }
    run(probe_jobs);
    for (size_t j = 0; j < jobs.size(); ++j) {
      double best = 1e9;
      int best_quarter = 0;
      for (int q = 0; q < 4; ++q) {
        float a[10], b[10];
        FivePointsFrom68(probes[j * 8 + 2 * q].landmarks68.data(), a);
        FivePointsFrom68(probes[j * 8 + 2 * q + 1].landmarks68.data(), b);
        const double disagreement = std::fabs(std::remainder(EyeLineAngle(a) - EyeLineAngle(b), 2 * kPi));
        // Upright unless another quarter is clearly better: the net also tracks some upside-down
        // faces, so 0° and 180° can agree alike, and upright is by far the common case.
        if (q == 0 || disagreement + kPreferUpright < best) {
          best = disagreement;
          best_quarter = q;
        }
      }
      // Keep the better-centred of the pair (+kTilt): the turns below refine it.
      jobs[j].face->landmarks68 = probes[j * 8 + 2 * best_quarter + 1].landmarks68;
    }
  }

  // Faces tilted past the limit: again on the same square turned by the eye line's angle. A face
  // far from upright gives poor landmarks, so its first angle is rough: repeat while the angle
  // still moves (at most kMaxTurns times).
  constexpr int kMaxTurns = 3;
  const double limit = c.upright_degrees * kPi / 180;
  std::vector<Job> turned;
  std::vector<double> angles(jobs.size(), 0.0);
  std::vector<size_t> active;
  for (size_t j = 0; j < jobs.size(); ++j) active.push_back(j);
  for (int turn = 0; turn < kMaxTurns && c.upright_degrees > 0 && !active.empty(); ++turn) {
    turned.clear();
    std::vector<size_t> next;
    for (size_t j : active) {
      float five[10];
      FivePointsFrom68(jobs[j].face->landmarks68.data(), five);
      const double angle = EyeLineAngle(five);
      // Stop once the face is upright enough (first pass) or the angle has settled.
      const double moved = std::remainder(angle - angles[j], 2 * kPi);
      if (turn == 0 ? std::fabs(angle) <= limit : std::fabs(moved) <= 5 * kPi / 180) continue;
      angles[j] = angle;
      // The square of the first pass, in source pixels (its corner and side under to_source).
      const AffineMatrix& t = jobs[j].to_source;
      const double ox = t.m[2], oy = t.m[5], side = t.m[0] * W;
      Job job = jobs[j];
      job.crop.matrix = SquareCrop(ox, oy, side, angle, W, H);
      job.crop.clip_x0 = job.crop.clip_y0 = 0;
      job.crop.clip_x1 = job.crop.clip_y1 = INT32_MAX;
      job.to_source = InvertAffine(job.crop.matrix);
      turned.push_back(job);
      next.push_back(j);
    }
    if (!turned.empty()) run(turned);
    active = next;
  }

  for (const Job& job : jobs) {
    DetectedFace& d = job.face->face;
    if (!d.has_landmarks) {
      FivePointsFrom68(job.face->landmarks68.data(), d.landmarks);
      d.has_landmarks = true;
    }
  }
}

AffineMatrix FacePipeline::AlignmentFor(const PipelineFace& face) const {
  const EmbedderConfig& e = embedder_config_;
  const DetectedFace& d = face.face;
  // Similarity on a face without its landmarks (its box lies outside the frame): the box crop.
  const float* points = e.uses_68 ? (face.landmarks68.size() == 136 ? face.landmarks68.data() + 2 * e.first_point : nullptr)
                                  : (d.has_landmarks ? d.landmarks : nullptr);
  return EmbedderCrop(e.alignment, d.box, points, d.has_landmarks ? d.landmarks : nullptr, e.template_xy.data(),
                      static_cast<int32_t>(e.template_xy.size() / 2), e.crop.out_width, e.crop.out_height);
}

void FacePipeline::RunEmbedder(const std::vector<ImageU8>& frames, std::vector<std::vector<PipelineFace>>& faces) {
  const EmbedderConfig& e = embedder_config_;
  const int views = e.flip ? 2 : 1;  // crops per face
  std::vector<PipelineFace*> all;
  std::vector<WarpCrop> crops;
  for (size_t f = 0; f < frames.size(); ++f)
    for (PipelineFace& face : faces[f]) {
      all.push_back(&face);
      WarpCrop crop;
      crop.frame = static_cast<int32_t>(f);
      crop.matrix = AlignmentFor(face);
      crops.push_back(crop);
      if (e.flip) {  // the mirror image of the crop
        WarpCrop mirrored = crop;
        mirrored.matrix = MirroredCrop(crop.matrix, e.crop.out_width);
        crops.push_back(mirrored);
      }
    }
  const WarpParams& warp = e.crop;
  const int32_t W = warp.out_width, H = warp.out_height;
  const int64_t per_crop = 3 * static_cast<int64_t>(W) * H;
  const int64_t chunk = kMaxBatch / views;  // faces per run
  for (size_t first = 0; first < all.size(); first += chunk) {
    const int64_t n = std::min<int64_t>(chunk, all.size() - first), m = n * views;
    input_.resize(m * per_crop);
    WarpAffineBatch(warp, frames.data(), crops.data() + first * views, m, input_.data(), pool_.get());
    std::vector<OutputTensor> out = embedder_->Run({InputView{input_.data(), {m, 3, H, W}}});
    const OutputTensor& emb = out[embedding_index_];
    const int64_t dim = emb.shape.empty() ? 0 : emb.size() / std::max<int64_t>(m, 1);
    if (dim <= 0 || emb.shape[0] != m) Fail(ErrorCode::Model, "The embedding model gave an output of the wrong shape");
    for (int64_t k = 0; k < n; ++k) {
      // With flip the two outputs are concatenated before normalising (MobileFaceNet's and the LFW
      // reference's protocol; on LFW it beat adding them: 98.77 vs 98.70 %).
      std::vector<float>& v = all[first + k]->embedding;
      const float* row = emb.data.get() + k * views * dim;
      v.assign(row, row + views * dim);
      L2Normalize(v.data(), views * dim);
    }
  }
}

std::vector<std::vector<PipelineFace>> FacePipeline::Run(const std::vector<ImageU8>& frames, bool embed) {
  if (embed && !embedder_) Fail(ErrorCode::State, "This pipeline has no embedding model");
  std::lock_guard<std::mutex> lock(mutex_);
  ThreadPool::CallerScope pinned(pool_.get());  // for every stage of the run
  std::vector<std::vector<DetectedFace>> detected = detector_->Detect(frames);
  std::vector<std::vector<PipelineFace>> faces(frames.size());
  for (size_t f = 0; f < frames.size(); ++f) {
    faces[f].resize(detected[f].size());
    for (size_t k = 0; k < detected[f].size(); ++k) faces[f][k].face = detected[f][k];
  }
  if (landmarker_) RunLandmarks(frames, faces);
  if (embed) RunEmbedder(frames, faces);
  return faces;
}

}  // namespace facesight
