// The CUDA vision kernels against their CPU versions on random inputs, then timings at realistic sizes.
// Exits 77 (ctest: skipped) when no CUDA device is usable. Tolerances:
//   letterbox, warpAffine  |gpu − cpu| ≤ 1e-4 in normalised units (both compute the same double
//                          sample positions and unfused float lerps, so they are normally equal);
//   priors                 equal;
//   decode                 equal candidate sets in (score desc, anchor asc) order, equal scores,
//                          boxes / landmarks within 1e-5 relative (floor 1 pixel: |d| ≤ 1e-5·max(|v|, 1));
//   NMS                    identical kept indices;
//   distances              ≤ 1e-4 relative (+ 1e-5·|q||g| for cosine, whose sums cancel); top-k
//                          indices identical except where the two values tie within that tolerance.
// `test_cuda_vision --no-bench` (or FACESIGHT_GPU_BENCH=0) skips the timings.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#include "common/cuda_util.h"
#include "common/thread_pool.h"
#include "cuda_test_util.h"
#include "test_util.h"
#include "vision/align.h"
#include "vision/align_cuda.h"
#include "vision/distance.h"
#include "vision/distance_cuda.h"
#include "vision/letterbox.h"
#include "vision/letterbox_cuda.h"
#include "vision/nms.h"
#include "vision/nms_cuda.h"
#include "vision/priors.h"
#include "vision/priors_cuda.h"

using namespace facesight;
using namespace facesight_test;

namespace {

// ---- Plumbing ---------------------------------------------------------------------------------------

int32_t ReadCount(const Dev<int32_t>& c) { return c.Download(1)[0]; }

struct HostFrame {
  std::vector<uint8_t> bytes;
  int w, h, channels;
  int64_t stride;
};

HostFrame RandomFrame(int w, int h, int channels, int stride_pad, std::mt19937& rng) {
  HostFrame f{{}, w, h, channels, static_cast<int64_t>(w) * channels + stride_pad};
  f.bytes.resize(f.stride * h);
  for (auto& b : f.bytes) b = static_cast<uint8_t>(rng());
  return f;
}

// Frames on the device: pixels in one buffer, descriptors (with device pointers) in another. Also the
// same frames as host descriptors for the CPU kernels.
struct DeviceFrames {
  Dev<uint8_t> pixels;
  Dev<ImageU8> descriptors;
  std::vector<ImageU8> host;

  explicit DeviceFrames(const std::vector<HostFrame>& frames) {
    size_t total = 0;
    for (const auto& f : frames) total += f.bytes.size();
    pixels = Dev<uint8_t>(std::max<size_t>(total, 1));
    std::vector<ImageU8> dev;
    size_t at = 0;
    for (const auto& f : frames) {
      CUDA_OK(cudaMemcpy(pixels.get() + at, f.bytes.data(), f.bytes.size(), cudaMemcpyHostToDevice));
      dev.push_back(ImageU8{pixels.get() + at, f.w, f.h, f.channels, f.stride});
      host.push_back(ImageU8{f.bytes.data(), f.w, f.h, f.channels, f.stride});
      at += f.bytes.size();
    }
    descriptors = Dev<ImageU8>(dev);
  }
};

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    if (!(d <= worst)) worst = d;  // NaN propagates
  }
  return worst;
}

PixelNormalization Norm(int variant, TensorLayout layout, ColorOrder order) {
  PixelNormalization n;
  n.layout = layout, n.order = order;
  if (variant % 3 == 1) {  // RetinaFace: BGR minus means, pixel units
    n.mean[0] = 104, n.mean[1] = 117, n.mean[2] = 123;
  } else if (variant % 3 == 2) {  // ImageNet-like
    n.mean[0] = 123.675f, n.mean[1] = 116.28f, n.mean[2] = 103.53f;
    n.std[0] = 58.395f, n.std[1] = 57.12f, n.std[2] = 57.375f;
  } else {  // FaceNet: /255
    n.std[0] = n.std[1] = n.std[2] = 255.f;
  }
  return n;
}

// ---- Letterbox --------------------------------------------------------------------------------------

void TestLetterbox(ThreadPool* pool) {
  std::mt19937 rng(11);
  const int sizes[][2] = {{1, 1}, {7, 5}, {640, 480}, {33, 100}, {160, 160}, {1000, 17}, {17, 1000}, {64, 48}, {2, 301}};
  const int outs[][2] = {{160, 160}, {64, 48}, {37, 91}};
  double worst = 0;
  int cases = 0;
  for (int mode = 0; mode < 3; ++mode)
    for (int channels : {1, 3, 4})
      for (int layout = 0; layout < 2; ++layout)
        for (int order = 0; order < 2; ++order)
          for (const auto& o : outs) {
            const int variant = cases++;
            LetterboxParams p;
            p.out_width = o[0], p.out_height = o[1];
            p.mode = static_cast<ResizeMode>(mode);
            p.pad_rgb[0] = 10, p.pad_rgb[1] = 128.5f, p.pad_rgb[2] = 250;
            p.norm = Norm(variant, layout ? TensorLayout::Nhwc : TensorLayout::Nchw, order ? ColorOrder::Bgr : ColorOrder::Rgb);
            std::vector<HostFrame> frames;
            for (const auto& s : sizes) frames.push_back(RandomFrame(s[0], s[1], channels, variant % 2 ? 13 : 0, rng));
            frames.push_back(RandomFrame(o[0], o[1], channels, 3, rng));  // identity scale
            DeviceFrames dev(frames);
            const int64_t n = static_cast<int64_t>(frames.size()), image = 3LL * o[0] * o[1];

            std::vector<float> cpu(n * image);
            std::vector<LetterboxGeometry> cpu_geometry(n);
            std::vector<char> ws(LetterboxWorkspaceSize(p, n) + 16);
            Letterbox(p, dev.host.data(), n, cpu.data(), cpu_geometry.data(), ws.data(), pool);

            Dev<float> out(n * image);
            Dev<LetterboxGeometry> geometry(n);
            STATUS_OK(LetterboxCuda(p, dev.descriptors.get(), n, out.get(), geometry.get(), nullptr, 0, nullptr));
            Sync();
            const double diff = MaxAbsDiff(out.Download(), cpu);
            worst = std::max(worst, diff);
            CHECK(diff <= 1e-4, "letterbox mode %d channels %d layout %d order %d out %dx%d: max diff %g", mode, channels,
                  layout, order, o[0], o[1], diff);
            const auto g = geometry.Download();
            for (int64_t i = 0; i < n; ++i)
              CHECK(std::memcmp(&g[i], &cpu_geometry[i], sizeof(LetterboxGeometry)) == 0, "letterbox geometry frame %lld",
                    static_cast<long long>(i));
          }
  // A batch beyond one grid's z extent is not tested (65,535 frames); the kernel loops over it.
  std::printf("letterbox: %d cases, max |gpu - cpu| = %g\n", cases, worst);
}

// ---- Priors and decoding ----------------------------------------------------------------------------

void TestPriors() {
  const int sizes[][2] = {{640, 640}, {320, 240}, {1, 1}, {1000, 37}, {1920, 1080}};
  int cases = 0;
  for (const auto& s : sizes)
    for (int clip = 0; clip < 2; ++clip) {
      PriorParams p = RetinaFacePriorParams(s[0], s[1]);
      p.clip = clip;
      if (cases % 3 == 2) {  // an odd custom layout: 4 levels, 1–3 sizes
        p.num_levels = 4;
        p.levels[3].step = 7;
        p.levels[3].num_sizes = 3;
        p.levels[3].min_sizes[0] = 5, p.levels[3].min_sizes[1] = 700, p.levels[3].min_sizes[2] = 33.3f;
        p.levels[1].num_sizes = 1;
      }
      ++cases;
      const int64_t n = PriorCount(p);
      std::vector<float> cpu(4 * n);
      GeneratePriors(p, cpu.data());
      Dev<float> dev(4 * n);
      STATUS_OK(GeneratePriorsCuda(p, dev.get(), nullptr));
      Sync();
      const auto gpu = dev.Download();
      CHECK(std::memcmp(gpu.data(), cpu.data(), cpu.size() * sizeof(float)) == 0, "priors %dx%d clip %d differ", s[0], s[1], clip);
    }
  std::printf("priors: %d cases\n", cases);
}

// Host candidates of one decode, sorted (score desc, anchor asc) when from the CPU.
struct HostCandidates {
  int64_t n = 0;
  std::vector<float> boxes, scores, landmarks;
  std::vector<int32_t> anchor;
};

HostCandidates SortCpu(const HostCandidates& c) {
  std::vector<int64_t> perm(c.n);
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return c.scores[a] > c.scores[b]; });
  HostCandidates s;
  s.n = c.n;
  for (int64_t i : perm) {
    s.boxes.insert(s.boxes.end(), c.boxes.begin() + 4 * i, c.boxes.begin() + 4 * i + 4);
    s.scores.push_back(c.scores[i]);
    if (!c.landmarks.empty()) s.landmarks.insert(s.landmarks.end(), c.landmarks.begin() + 10 * i, c.landmarks.begin() + 10 * i + 10);
    s.anchor.push_back(c.anchor[i]);
  }
  return s;
}

bool CloseRel(const std::vector<float>& gpu, const std::vector<float>& cpu, size_t n, double* worst) {
  for (size_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(gpu[i]) - cpu[i]) / std::max(1.0, std::fabs(static_cast<double>(cpu[i])));
    if (!(d <= 1e-5)) return false;
    *worst = std::max(*worst, d);
  }
  return true;
}

// Random scores in [0, 1] on a 1/256 grid (so many tie), most of them low as a detector's are.
float DetectorScore(std::mt19937& rng) {
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const float v = u(rng) < 0.9f ? u(rng) * 0.1f : u(rng);
  return std::round(v * 256.f) / 256.f;
}

// Scores are copied from the input, so they must be equal; a sigmoid (exp through double on the GPU,
// glibc's expf on the CPU) may differ in the last bit.
void CompareCandidates(const char* what, const HostCandidates& cpu, const std::vector<float>& boxes,
                       const std::vector<float>& scores, const std::vector<float>* landmarks,
                       const std::vector<int32_t>* anchor, bool exact_scores, double* worst) {
  const size_t n = cpu.n;
  if (n == 0) return;
  if (exact_scores)
    CHECK(std::memcmp(scores.data(), cpu.scores.data(), n * sizeof(float)) == 0, "%s: scores differ", what);
  else
    CHECK(CloseRel(scores, cpu.scores, n, worst), "%s: scores differ", what);
  CHECK(CloseRel(boxes, cpu.boxes, 4 * n, worst), "%s: boxes differ", what);
  if (landmarks) CHECK(CloseRel(*landmarks, cpu.landmarks, 10 * n, worst), "%s: landmarks differ", what);
  if (anchor) CHECK(std::equal(cpu.anchor.begin(), cpu.anchor.end(), anchor->begin()), "%s: anchor order differs", what);
}

void TestRetinaDecode() {
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> delta(-2.f, 2.f);
  const int sizes[][2] = {{640, 640}, {320, 240}, {9, 9}, {1, 1}};
  double worst = 0;
  int cases = 0;
  for (const auto& s : sizes)
    for (float threshold : {0.02f, 0.5f, 0.99f, 1.0f})
      for (int with_extras = 0; with_extras < 2; ++with_extras) {
        ++cases;
        const PriorParams pp = RetinaFacePriorParams(s[0], s[1]);
        const int64_t A = PriorCount(pp);
        std::vector<float> priors(4 * A), loc(4 * A), conf(2 * A), landms(10 * A);
        GeneratePriors(pp, priors.data());
        for (auto& v : loc) v = delta(rng);
        for (auto& v : landms) v = delta(rng);
        for (int64_t a = 0; a < A; ++a) conf[2 * a + 1] = DetectorScore(rng), conf[2 * a] = 1 - conf[2 * a + 1];
        RetinaDecodeParams p;
        p.image_width = s[0], p.image_height = s[1], p.score_threshold = threshold;

        HostCandidates raw;
        raw.boxes.resize(4 * A), raw.scores.resize(A), raw.landmarks.resize(10 * A), raw.anchor.resize(A);
        raw.n = DecodeRetinaFace(p, priors.data(), A, loc.data(), conf.data(), landms.data(),
                                 Candidates{raw.boxes.data(), raw.scores.data(), raw.landmarks.data(), raw.anchor.data()});
        const HostCandidates cpu = SortCpu(raw);

        Dev<float> d_priors(priors), d_loc(loc), d_conf(conf), d_landms(landms);
        Dev<float> boxes(4 * A), scores(A), landmarks(10 * A);
        Dev<int32_t> anchor(A), count(1);
        Dev<char> ws(DecodeCudaWorkspaceSize(A));
        const Candidates out{boxes.get(), scores.get(), with_extras ? landmarks.get() : nullptr, with_extras ? anchor.get() : nullptr};
        STATUS_OK(DecodeRetinaFaceCuda(p, d_priors.get(), A, d_loc.get(), d_conf.get(), with_extras ? d_landms.get() : nullptr,
                                       out, count.get(), ws.get(), ws.size(), nullptr));
        Sync();
        const int32_t n = ReadCount(count);
        CHECK(n == cpu.n, "retina decode %dx%d t=%g: %d candidates, CPU %lld", s[0], s[1], threshold, n, static_cast<long long>(cpu.n));
        if (n != cpu.n) continue;
        const auto lm = landmarks.Download(10 * n);
        const auto an = anchor.Download(n);
        CompareCandidates("retina decode", cpu, boxes.Download(4 * n), scores.Download(n), with_extras ? &lm : nullptr,
                          with_extras ? &an : nullptr, true, &worst);
      }
  std::printf("retinaface decode: %d cases, max relative difference %g\n", cases, worst);
}

void TestSsdDecode() {
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> u(0.f, 1.f), delta(-3.f, 3.f);
  double worst = 0;
  int cases = 0;
  for (int64_t A : {int64_t{1}, int64_t{100}, int64_t{1917}, int64_t{5000}})
    for (int variant = 0; variant < 8; ++variant) {
      ++cases;
      SsdDecodeParams p;
      p.image_width = 512, p.image_height = 384;
      p.yx_order = variant & 1;
      p.clip = variant & 2;
      p.score_sigmoid = variant & 4;
      p.score_stride = 1 + variant % 3;
      p.score_index = p.score_stride - 1;
      p.score_threshold = variant % 2 ? 0.3f : 0.6f;
      std::vector<float> anchors(4 * A), deltas(4 * A), scores(A * p.score_stride);
      for (int64_t a = 0; a < A; ++a) {
        anchors[4 * a] = u(rng), anchors[4 * a + 1] = u(rng);
        anchors[4 * a + 2] = 0.05f + 0.5f * u(rng), anchors[4 * a + 3] = 0.05f + 0.5f * u(rng);
      }
      for (auto& v : deltas) v = delta(rng);
      for (auto& v : scores) v = p.score_sigmoid ? std::round(delta(rng) * 16.f) / 16.f : DetectorScore(rng);

      HostCandidates raw;
      raw.boxes.resize(4 * A), raw.scores.resize(A), raw.anchor.resize(A);
      raw.n = DecodeSsd(p, anchors.data(), A, deltas.data(), scores.data(),
                        Candidates{raw.boxes.data(), raw.scores.data(), nullptr, raw.anchor.data()});
      const HostCandidates cpu = SortCpu(raw);

      Dev<float> d_anchors(anchors), d_deltas(deltas), d_scores(scores), boxes(4 * A), out_scores(A);
      Dev<int32_t> anchor(A), count(1);
      Dev<char> ws(DecodeCudaWorkspaceSize(A));
      STATUS_OK(DecodeSsdCuda(p, d_anchors.get(), A, d_deltas.get(), d_scores.get(),
                              Candidates{boxes.get(), out_scores.get(), nullptr, anchor.get()}, count.get(), ws.get(),
                              ws.size(), nullptr));
      Sync();
      const int32_t n = ReadCount(count);
      CHECK(n == cpu.n, "ssd decode A=%lld variant %d: %d candidates, CPU %lld", static_cast<long long>(A), variant, n,
            static_cast<long long>(cpu.n));
      if (n != cpu.n) continue;
      const auto an = anchor.Download(n);
      CompareCandidates("ssd decode", cpu, boxes.Download(4 * n), out_scores.Download(n), nullptr, &an, !p.score_sigmoid,
                        &worst);
    }
  std::printf("ssd decode: %d cases, max relative difference %g\n", cases, worst);
}

// ---- NMS --------------------------------------------------------------------------------------------

// Boxes in clusters (so that suppression happens), scores on a coarse grid (so that they tie).
void ClusteredBoxes(int64_t n, std::mt19937& rng, std::vector<float>* boxes, std::vector<float>* scores) {
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int64_t clusters = std::max<int64_t>(1, n / 20);
  std::vector<float> centres(4 * clusters);
  for (int64_t c = 0; c < clusters; ++c) {
    centres[4 * c] = 600 * u(rng), centres[4 * c + 1] = 600 * u(rng);
    centres[4 * c + 2] = 8 + 120 * u(rng), centres[4 * c + 3] = 8 + 120 * u(rng);
  }
  boxes->resize(4 * n), scores->resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const float* c = &centres[4 * (rng() % clusters)];
    const float w = c[2] * (0.7f + 0.6f * u(rng)), h = c[3] * (0.7f + 0.6f * u(rng));
    const float x = c[0] + c[2] * 0.3f * (u(rng) - 0.5f), y = c[1] + c[3] * 0.3f * (u(rng) - 0.5f);
    float* b = &(*boxes)[4 * i];
    b[0] = std::round(x), b[1] = std::round(y), b[2] = std::round(x + w), b[3] = std::round(y + h);  // integer corners: exact IoU ties
    if (i % 97 == 5) b[2] = b[0], b[3] = b[1];  // empty boxes: 0/0 IoU with each other
    (*scores)[i] = std::round(u(rng) * 32.f) / 32.f;
  }
}

void TestNms() {
  std::mt19937 rng(41);
  int cases = 0;
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{63}, int64_t{64}, int64_t{65}, int64_t{200}, int64_t{1000}, int64_t{5000}})
    for (int variant = 0; variant < 12; ++variant) {
      ++cases;
      NmsParams p;
      p.iou_threshold = variant % 3 == 0 ? 0.3f : variant % 3 == 1 ? 0.5f : 0.7f;
      p.plus_one = variant & 1;
      p.max_output = variant % 4 == 3 ? 10 : 0;
      p.pre_top_k = variant % 5 == 4 ? 100 : 0;
      p.score_threshold = variant % 6 == 5 ? 0.5f : -std::numeric_limits<float>::infinity();
      const bool device_count = variant % 2 == 0;  // count given on the device, a few short of capacity
      std::vector<float> boxes, scores;
      ClusteredBoxes(n, rng, &boxes, &scores);
      const int64_t valid = device_count ? std::max<int64_t>(0, n - 3) : n;

      std::vector<int32_t> cpu(std::max<int64_t>(valid, 1));
      std::vector<char> ws(NmsWorkspaceSize(valid) + 16);
      const int64_t kept_cpu = Nms(p, boxes.data(), scores.data(), valid, cpu.data(), ws.data());
      cpu.resize(kept_cpu);

      Dev<float> d_boxes(boxes), d_scores(scores);
      Dev<int32_t> count(std::vector<int32_t>{static_cast<int32_t>(valid)});
      Dev<int32_t> kept(std::max<int64_t>(n, 1)), kept_count(1);
      Dev<char> dws(NmsCudaWorkspaceSize(p, n));
      STATUS_OK(NmsCuda(p, d_boxes.get(), d_scores.get(), n, device_count ? count.get() : nullptr, kept.get(), kept_count.get(),
                        dws.get(), dws.size(), nullptr));
      Sync();
      const int32_t k = ReadCount(kept_count);
      const auto gpu = kept.Download(k);
      CHECK(k == kept_cpu && std::equal(cpu.begin(), cpu.end(), gpu.begin()),
            "nms n=%lld variant %d: kept %d, CPU %lld (or the indices differ)", static_cast<long long>(n), variant, k,
            static_cast<long long>(kept_cpu));
    }
  std::printf("nms: %d cases\n", cases);
}

// decode → NMS on the device, count never leaving it, against the CPU's decode → NMS.
void TestDecodeThenNms() {
  std::mt19937 rng(51);
  std::uniform_real_distribution<float> delta(-0.5f, 0.5f);
  const PriorParams pp = RetinaFacePriorParams(320, 320);
  const int64_t A = PriorCount(pp);
  std::vector<float> priors(4 * A), loc(4 * A), conf(2 * A);
  GeneratePriors(pp, priors.data());
  for (auto& v : loc) v = delta(rng);
  for (int64_t a = 0; a < A; ++a) conf[2 * a + 1] = DetectorScore(rng);
  RetinaDecodeParams dp;
  dp.image_width = dp.image_height = 320, dp.score_threshold = 0.05f;
  NmsParams np;
  np.iou_threshold = 0.4f, np.pre_top_k = 5000, np.max_output = 750;

  std::vector<float> boxes(4 * A), scores(A);
  std::vector<int32_t> anchor(A), kept(A);
  const int64_t n = DecodeRetinaFace(dp, priors.data(), A, loc.data(), conf.data(), nullptr,
                                     Candidates{boxes.data(), scores.data(), nullptr, anchor.data()});
  std::vector<char> ws(NmsWorkspaceSize(n) + 16);
  const int64_t k = Nms(np, boxes.data(), scores.data(), n, kept.data(), ws.data());

  Dev<float> d_priors(priors), d_loc(loc), d_conf(conf), d_boxes(4 * A), d_scores(A);
  Dev<int32_t> d_anchor(A), d_count(1), d_kept(A), d_kept_count(1);
  Dev<char> dws(DecodeCudaWorkspaceSize(A)), nws(NmsCudaWorkspaceSize(np, A));
  STATUS_OK(DecodeRetinaFaceCuda(dp, d_priors.get(), A, d_loc.get(), d_conf.get(), nullptr,
                                 Candidates{d_boxes.get(), d_scores.get(), nullptr, d_anchor.get()}, d_count.get(), dws.get(),
                                 dws.size(), nullptr));
  STATUS_OK(NmsCuda(np, d_boxes.get(), d_scores.get(), A, d_count.get(), d_kept.get(), d_kept_count.get(), nws.get(), nws.size(),
                    nullptr));
  Sync();
  const int32_t gk = ReadCount(d_kept_count);
  const auto g_kept = d_kept.Download(gk);
  const auto g_anchor = d_anchor.Download();
  bool same = gk == k;
  for (int64_t i = 0; same && i < k; ++i) same = g_anchor[g_kept[i]] == anchor[kept[i]];
  CHECK(same, "decode → nms: GPU kept %d faces, CPU %lld (or different anchors)", gk, static_cast<long long>(k));
  std::printf("decode -> nms: %lld candidates, %lld kept, same anchors\n", static_cast<long long>(n), static_cast<long long>(k));
}

// ---- warpAffine -------------------------------------------------------------------------------------

void TestWarp(ThreadPool* pool) {
  std::mt19937 rng(61);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int sizes[][2] = {{640, 480}, {1, 1}, {37, 211}, {300, 300}};
  const int outs[][2] = {{112, 112}, {37, 23}, {1, 1}};
  double worst = 0;
  int cases = 0;
  for (int channels : {1, 3, 4})
    for (int layout = 0; layout < 2; ++layout)
      for (int order = 0; order < 2; ++order)
        for (const auto& o : outs) {
          const int variant = cases++;
          WarpParams p;
          p.out_width = o[0], p.out_height = o[1];
          p.border_rgb[0] = 3, p.border_rgb[1] = 77.5f, p.border_rgb[2] = 200;
          p.norm = Norm(variant, layout ? TensorLayout::Nhwc : TensorLayout::Nchw, order ? ColorOrder::Bgr : ColorOrder::Rgb);
          std::vector<HostFrame> frames;
          for (const auto& s : sizes) frames.push_back(RandomFrame(s[0], s[1], channels, variant % 2 ? 7 : 0, rng));
          DeviceFrames dev(frames);
          std::vector<WarpCrop> crops;
          for (int c = 0; c < 40; ++c) {
            WarpCrop crop;
            crop.frame = c % static_cast<int>(frames.size());
            const HostFrame& f = frames[crop.frame];
            // A similarity onto the crop: a face-sized region anywhere, partly outside the frame at times.
            const float scale = 0.2f + 3.f * u(rng), angle = 6.2831853f * u(rng);
            const float cx = f.w * (1.4f * u(rng) - 0.2f), cy = f.h * (1.4f * u(rng) - 0.2f);
            const float a = scale * std::cos(angle), b = scale * std::sin(angle);
            crop.matrix.m[0] = a, crop.matrix.m[1] = -b, crop.matrix.m[3] = b, crop.matrix.m[4] = a;
            crop.matrix.m[2] = o[0] / 2.f - (a * cx - b * cy), crop.matrix.m[5] = o[1] / 2.f - (b * cx + a * cy);
            if (c == 0) crop.matrix = AffineMatrix{};  // identity
            if (c == 1) crop.matrix = AffineMatrix{{0, 0, 0, 0, 0, 0}};  // singular: border only
            if (c == 2) crop.matrix = AffineMatrix{{1, 0, 0.5f, 0, 1, -0.25f}};  // half-pixel shifts
            if (c % 4 == 3) {  // a clip rectangle (face-api's padded box), partly outside the frame
              crop.clip_x0 = static_cast<int32_t>(f.w * u(rng)) - 2, crop.clip_y0 = static_cast<int32_t>(f.h * u(rng)) - 2;
              crop.clip_x1 = crop.clip_x0 + 1 + static_cast<int32_t>(f.w * u(rng));
              crop.clip_y1 = crop.clip_y0 + 1 + static_cast<int32_t>(f.h * u(rng));
            }
            crops.push_back(crop);
          }
          const int64_t n = static_cast<int64_t>(crops.size()), image = 3LL * o[0] * o[1];
          std::vector<float> cpu(n * image);
          WarpAffineBatch(p, dev.host.data(), crops.data(), n, cpu.data(), pool);
          Dev<WarpCrop> d_crops(crops);
          Dev<float> out(n * image);
          STATUS_OK(WarpAffineBatchCuda(p, dev.descriptors.get(), d_crops.get(), n, out.get(), nullptr, 0, nullptr));
          Sync();
          const double diff = MaxAbsDiff(out.Download(), cpu);
          worst = std::max(worst, diff);
          CHECK(diff <= 1e-4, "warp channels %d layout %d order %d out %dx%d: max diff %g", channels, layout, order, o[0], o[1], diff);
        }
  std::printf("warpAffine: %d cases, max |gpu - cpu| = %g\n", cases, worst);
}

// ---- Distances --------------------------------------------------------------------------------------

void Normalise(std::vector<float>& v, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t i = 0; i < dim; ++i) s += static_cast<double>(v[r * dim + i]) * v[r * dim + i];
    const float inv = s > 0 ? static_cast<float>(1 / std::sqrt(s)) : 0.f;
    for (int64_t i = 0; i < dim; ++i) v[r * dim + i] *= inv;
  }
}

void TestDistances(ThreadPool* pool) {
  std::mt19937 rng(71);
  const int64_t shapes[][3] = {{1, 1, 1},   {7, 5, 3},     {64, 127, 64}, {130, 1000, 128},
                               {3, 4099, 130}, {65, 300, 33}, {2, 20000, 16}};
  int cases = 0;
  double worst_rel = 0, worst_abs = 0;
  for (const auto& s : shapes)
    for (int metric = 0; metric < 4; ++metric)
      for (int k : {0, 1, 5, 32}) {
        ++cases;
        const int64_t Q = s[0], G = s[1], D = s[2];
        DistanceParams p;
        p.queries = Q, p.gallery = G, p.dim = D, p.top_k = k;
        p.metric = metric == 0 ? DistanceMetric::SquaredEuclidean : metric == 1 ? DistanceMetric::Euclidean : DistanceMetric::Cosine;
        p.normalized = metric == 2;
        std::vector<float> q = RandomVector(Q * D, rng()), g = RandomVector(G * D, rng());
        // Exact ties: duplicated gallery rows, and a query equal to a gallery row (distance exactly 0).
        for (int64_t r = 3; r < G; r += 5) std::copy(g.begin() + (r - 3) * D, g.begin() + (r - 2) * D, g.begin() + r * D);
        if (G > 2) std::copy(g.begin() + 2 * D, g.begin() + 3 * D, q.begin());
        if (G > 9 && metric == 3) std::fill(g.begin() + 9 * D, g.begin() + 10 * D, 0.f);  // zero vector: cosine 0
        if (p.normalized) Normalise(q, Q, D), Normalise(g, G, D);

        std::vector<float> cpu_d(Q * G), cpu_v(Q * std::max(k, 1));
        std::vector<int32_t> cpu_i(Q * std::max(k, 1));
        std::vector<char> ws(DistanceWorkspaceSize(p) + 16);
        Distances(p, q.data(), g.data(), cpu_d.data(), k ? cpu_i.data() : nullptr, k ? cpu_v.data() : nullptr, ws.data(), pool);

        Dev<float> dq(q), dg(g), dd(Q * G), dv(Q * std::max(k, 1));
        Dev<int32_t> di(Q * std::max(k, 1));
        Dev<char> dws(DistancesCudaWorkspaceSize(p));
        // Distances and top-k together, then top-k alone (the path that never materialises the matrix).
        STATUS_OK(DistancesCuda(p, dq.get(), dg.get(), dd.get(), k ? di.get() : nullptr, k ? dv.get() : nullptr, dws.get(),
                                dws.size(), nullptr));
        Sync();
        const auto gd = dd.Download();
        // Cosine values are cosines (|q||g| divided out), whose sums may cancel: an absolute floor.
        const double floor = p.metric == DistanceMetric::Cosine ? 1e-5 : 1e-6;
        auto tol = [&](float ref) { return 1e-4 * std::fabs(ref) + floor; };
        bool d_ok = true;
        for (int64_t i = 0; i < Q * G; ++i) {
          const double err = std::fabs(static_cast<double>(gd[i]) - cpu_d[i]);
          if (!(err <= tol(cpu_d[i]))) d_ok = false;
          if (metric < 2) worst_rel = std::max(worst_rel, err / std::max(1e-6, std::fabs(static_cast<double>(cpu_d[i]))));
          else worst_abs = std::max(worst_abs, err);
        }
        CHECK(d_ok, "distances Q=%lld G=%lld D=%lld metric %d: values differ", static_cast<long long>(Q),
              static_cast<long long>(G), static_cast<long long>(D), metric);
        if (k == 0) continue;
        for (int pass = 0; pass < 2; ++pass) {
          if (pass == 1) {
            STATUS_OK(DistancesCuda(p, dq.get(), dg.get(), nullptr, di.get(), dv.get(), dws.get(), dws.size(), nullptr));
            Sync();
          }
          const auto gi = di.Download();
          const auto gv = dv.Download();
          bool ok = true;
          for (int64_t qi = 0; qi < Q && ok; ++qi)
            for (int r = 0; r < k && ok; ++r) {
              const int64_t at = qi * k + r;
              const int32_t ci = cpu_i[at], gidx = gi[at];
              if (ci < 0 || gidx < 0) {
                ok = ci == gidx && (std::isinf(gv[at]) && gv[at] == cpu_v[at]);
                continue;
              }
              ok = std::fabs(static_cast<double>(gv[at]) - cpu_v[at]) <= tol(cpu_v[at]);
              // A different index is a tie within tolerance: its true value equals the CPU's at this rank.
              // An exact tie (duplicated rows: equal values on both sides) must resolve the same way,
              // lower index first.
              const float true_value = cpu_d[qi * G + gidx];
              if (ok && gidx != ci) ok = std::fabs(static_cast<double>(true_value) - cpu_v[at]) <= tol(cpu_v[at]) && true_value != cpu_v[at];
              for (int r2 = 0; ok && r2 < r; ++r2) ok = gi[qi * k + r2] != gidx;
              // The GPU's own list is in order: nearest first, equal values by ascending index.
              if (ok && r > 0 && gi[at - 1] >= 0) {
                const float prev = gv[at - 1];
                const bool larger = p.metric == DistanceMetric::Cosine;
                ok = (larger ? prev > gv[at] : prev < gv[at]) || (prev == gv[at] && gi[at - 1] < gidx);
              }
              if (!ok)
                std::fprintf(stderr, "  q %lld rank %d: gpu (%d, %.9g) cpu (%d, %.9g)\n", static_cast<long long>(qi), r, gidx,
                             gv[at], ci, cpu_v[at]);
            }
          CHECK(ok, "top-%d Q=%lld G=%lld D=%lld metric %d pass %d: lists differ", k, static_cast<long long>(Q),
                static_cast<long long>(G), static_cast<long long>(D), metric, pass);
        }
      }
  std::printf("distances: %d cases, max relative difference %g (euclidean), max absolute difference %g (cosine)\n", cases,
              worst_rel, worst_abs);
}

// What the launchers refuse, without launching anything.
void TestStatuses() {
  DistanceParams p;
  p.queries = 4, p.gallery = 100, p.dim = 8, p.top_k = kMaxCudaTopK + 1;
  int32_t* idx = reinterpret_cast<int32_t*>(16);  // never dereferenced: rejected first
  float* val = reinterpret_cast<float*>(16);
  CHECK(DistancesCuda(p, val, val, nullptr, idx, val, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument,
        "top_k above %d accepted", kMaxCudaTopK);
  NmsParams np;
  const size_t need = NmsCudaWorkspaceSize(np, 1000);
  CHECK(NmsCuda(np, val, val, 1000, nullptr, idx, idx, val, need - 1, nullptr).code == CudaStatus::kWorkspaceTooSmall,
        "NMS ran with too small a workspace");
  CHECK(DecodeRetinaFaceCuda(RetinaDecodeParams{}, val, 1000, val, val, nullptr, Candidates{}, idx, val,
                             DecodeCudaWorkspaceSize(1000) - 1, nullptr).code == CudaStatus::kWorkspaceTooSmall,
        "decode ran with too small a workspace");
  LetterboxParams lp;  // out size 0
  CHECK(LetterboxCuda(lp, nullptr, 1, val, nullptr, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument,
        "letterbox to an empty size accepted");
}

// ---- Timings ----------------------------------------------------------------------------------------

void Row(const char* kernel, const char* size, double ms, const char* rate) {
  std::printf("| %-18s | %-46s | %9.3f | %-28s |\n", kernel, size, ms, rate);
}

void Bench(ThreadPool* pool) {
  Timer timer;
  char size[96], rate[64];
  std::printf("\nTimings (p50 of 20 runs, cudaEvent, after one warm-up):\n");
  std::printf("| %-18s | %-46s | %9s | %-28s |\n", "kernel", "size", "p50 ms", "rate");
  std::printf("|%s|%s|%s|%s|\n", std::string(20, '-').c_str(), std::string(48, '-').c_str(), std::string(11, '-').c_str(),
              std::string(30, '-').c_str());
  std::mt19937 rng(81);

  {  // Letterbox: 1920×1080 RGB frames (each its own buffer) → 640×640 NCHW, RetinaFace normalisation.
    const int kMaxBatch = 256;
    HostFrame f = RandomFrame(1920, 1080, 3, 0, rng);
    Dev<uint8_t> pixels(f.bytes.size() * kMaxBatch);
    std::vector<ImageU8> desc;
    for (int i = 0; i < kMaxBatch; ++i) {
      CUDA_OK(cudaMemcpy(pixels.get() + i * f.bytes.size(), f.bytes.data(), f.bytes.size(), cudaMemcpyHostToDevice));
      desc.push_back(ImageU8{pixels.get() + i * f.bytes.size(), f.w, f.h, 3, f.stride});
    }
    Dev<ImageU8> d_desc(desc);
    LetterboxParams p;
    p.out_width = p.out_height = 640;
    p.norm = Norm(1, TensorLayout::Nchw, ColorOrder::Bgr);
    Dev<float> out(3LL * 640 * 640 * kMaxBatch);
    for (int batch : {8, 64, 256}) {
      const double ms = timer.P50([&] { STATUS_OK(LetterboxCuda(p, d_desc.get(), batch, out.get(), nullptr, nullptr, 0, nullptr)); });
      std::snprintf(size, sizeof size, "1920x1080 RGB -> 640x640, batch %d", batch);
      std::snprintf(rate, sizeof rate, "%.0f frames/s", batch / ms * 1e3);
      Row("letterbox", size, ms, rate);
    }
  }

  {  // Priors, then decode of 16,800 anchors (640×640 RetinaFace) at threshold 0.02.
    const PriorParams pp = RetinaFacePriorParams(640, 640);
    const int64_t A = PriorCount(pp);
    std::uniform_real_distribution<float> delta(-1.f, 1.f);
    std::vector<float> loc(4 * A), conf(2 * A), landms(10 * A);
    for (auto& v : loc) v = delta(rng);
    for (auto& v : landms) v = delta(rng);
    // As a detector's: nearly all anchors below the threshold, a few hundred candidates.
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t a = 0; a < A; ++a) conf[2 * a + 1] = u(rng) < 0.97f ? 0.02f * u(rng) : u(rng);
    Dev<float> priors(4 * A), d_loc(loc), d_conf(conf), d_landms(landms), boxes(4 * A), scores(A), lm(10 * A);
    Dev<int32_t> anchor(A), count(1);
    Dev<char> ws(DecodeCudaWorkspaceSize(A));
    double ms = timer.P50([&] { STATUS_OK(GeneratePriorsCuda(pp, priors.get(), nullptr)); });
    std::snprintf(size, sizeof size, "640x640 RetinaFace, %lld priors", static_cast<long long>(A));
    Row("priors", size, ms, "");
    RetinaDecodeParams p;
    p.image_width = p.image_height = 640, p.score_threshold = 0.02f;
    ms = timer.P50([&] {
      STATUS_OK(DecodeRetinaFaceCuda(p, priors.get(), A, d_loc.get(), d_conf.get(), d_landms.get(),
                                     Candidates{boxes.get(), scores.get(), lm.get(), anchor.get()}, count.get(), ws.get(),
                                     ws.size(), nullptr));
    });
    std::snprintf(size, sizeof size, "%lld anchors, %d pass 0.02 (sorted)", static_cast<long long>(A), ReadCount(count));
    Row("decode retinaface", size, ms, "");
  }

  {  // NMS of 5,000 clustered candidates.
    std::vector<float> boxes, scores;
    ClusteredBoxes(5000, rng, &boxes, &scores);
    for (auto& s : scores) s = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
    NmsParams p;
    p.iou_threshold = 0.4f;
    Dev<float> d_boxes(boxes), d_scores(scores);
    Dev<int32_t> kept(5000), kept_count(1);
    Dev<char> ws(NmsCudaWorkspaceSize(p, 5000));
    const double ms = timer.P50([&] {
      STATUS_OK(NmsCuda(p, d_boxes.get(), d_scores.get(), 5000, nullptr, kept.get(), kept_count.get(), ws.get(), ws.size(), nullptr));
    });
    std::snprintf(size, sizeof size, "5,000 candidates, IoU 0.4, %d kept", ReadCount(kept_count));
    Row("nms", size, ms, "");
  }

  {  // warpAffine: 256 crops 112×112 out of 8 frames 1920×1080.
    std::vector<HostFrame> frames;
    for (int i = 0; i < 8; ++i) frames.push_back(RandomFrame(1920, 1080, 3, 0, rng));
    DeviceFrames dev(frames);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<WarpCrop> crops(256);
    for (int c = 0; c < 256; ++c) {
      const float scale = 112.f / (60 + 300 * u(rng)), angle = 0.6f * (u(rng) - 0.5f), cx = 1920 * u(rng), cy = 1080 * u(rng);
      const float a = scale * std::cos(angle), b = scale * std::sin(angle);
      crops[c].frame = c % 8;
      crops[c].matrix = AffineMatrix{{a, -b, 56 - (a * cx - b * cy), b, a, 56 - (b * cx + a * cy)}};
    }
    WarpParams p;
    p.out_width = p.out_height = 112;
    p.norm = Norm(2, TensorLayout::Nchw, ColorOrder::Rgb);
    Dev<WarpCrop> d_crops(crops);
    Dev<float> out(256LL * 3 * 112 * 112);
    const double ms = timer.P50([&] {
      STATUS_OK(WarpAffineBatchCuda(p, dev.descriptors.get(), d_crops.get(), 256, out.get(), nullptr, 0, nullptr));
    });
    std::snprintf(rate, sizeof rate, "%.0f crops/s", 256 / ms * 1e3);
    Row("warpAffine", "256 crops 112x112 from 8 x 1920x1080", ms, rate);
  }

  {  // Top-1 search: 1,024 queries × 1,000,000 × 128 (unit vectors), checked on a few queries.
    const int64_t Q = 1024, G = 1000000, D = 128, kCheck = 8;
    std::vector<float> g(G * D), q(Q * D);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    auto next = [&] {  // xorshift64*: 128 M floats in well under a second
      state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
      return static_cast<float>((state * 0x2545F4914F6CDD1Dull) >> 40) * (2.f / 16777216.f) - 1.f;
    };
    for (auto& v : g) v = next();
    for (auto& v : q) v = next();
    Normalise(g, G, D), Normalise(q, Q, D);
    Dev<float> dq(q), dg(g), dv(Q);
    Dev<int32_t> di(Q);
    for (DistanceMetric metric : {DistanceMetric::Euclidean, DistanceMetric::Cosine}) {
      DistanceParams p;
      p.queries = Q, p.gallery = G, p.dim = D, p.metric = metric, p.top_k = 1;
      Dev<char> ws(DistancesCudaWorkspaceSize(p));
      const double ms = timer.P50([&] {
        STATUS_OK(DistancesCuda(p, dq.get(), dg.get(), nullptr, di.get(), dv.get(), ws.get(), ws.size(), nullptr));
      });
      std::snprintf(size, sizeof size, "top-1, 1,024 x 1,000,000 x 128, %s", metric == DistanceMetric::Cosine ? "cosine" : "euclidean");
      std::snprintf(rate, sizeof rate, "%.1f TFLOP/s (%s)", 2.0 * Q * G * D / (ms * 1e-3) / 1e12,
                    metric == DistanceMetric::Cosine ? "1 FMA/term" : "sub+FMA/term");
      Row("distances", size, ms, rate);
      // The first queries against the CPU kernel.
      DistanceParams pc = p;
      pc.queries = kCheck;
      std::vector<float> cv(kCheck);
      std::vector<int32_t> ci(kCheck);
      Distances(pc, q.data(), g.data(), nullptr, ci.data(), cv.data(), nullptr, pool);
      const auto gi = di.Download(kCheck);
      const auto gv = dv.Download(kCheck);
      for (int64_t i = 0; i < kCheck; ++i)
        CHECK(std::fabs(static_cast<double>(gv[i]) - cv[i]) <= 1e-4 * std::fabs(cv[i]) + 1e-5 &&
                  (gi[i] == ci[i] || std::fabs(static_cast<double>(gv[i]) - cv[i]) <= 1e-5),
              "top-1 search query %lld: gpu (%d, %g) cpu (%d, %g)", static_cast<long long>(i), gi[i], gv[i], ci[i], cv[i]);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!GpuUsable("test_cuda_vision")) return 77;
  const bool bench = BenchRequested(argc, argv);

  ThreadPool pool(static_cast<int>(std::max(1u, std::min(16u, std::thread::hardware_concurrency()))));
  const auto t0 = std::chrono::steady_clock::now();
  TestLetterbox(&pool);
  TestPriors();
  TestRetinaDecode();
  TestSsdDecode();
  TestNms();
  TestDecodeThenNms();
  TestWarp(&pool);
  TestDistances(&pool);
  TestStatuses();
  std::printf("correctness: %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (bench && Failures() == 0) Bench(&pool);
  return Finish("test_cuda_vision");
}
