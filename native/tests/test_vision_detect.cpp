// Detector post-processing: RetinaFace priors against a transcription of Pytorch_Retinaface's
// PriorBox, RetinaFace and SSD decoding against the plain formulas (double; tolerance 1e-5 relative
// + 1e-4 pixels), and NMS against a brute-force O(n²) greedy reference — random and integer boxes,
// many tied scores, both area conventions, top-k before and after — which must match exactly.
#include <algorithm>
#include <numeric>

#include "test_util.h"
#include "vision/nms.h"
#include "vision/priors.h"

using namespace facesight;
using namespace facesight_test;

// ---- priors ----

// PriorBox.forward, loop for loop (feature maps ceil(H/step) × ceil(W/step)).
static std::vector<float> ReferencePriors(int W, int H, bool clip) {
  const int steps[3] = {8, 16, 32};
  const double min_sizes[3][2] = {{16, 32}, {64, 128}, {256, 512}};
  std::vector<float> anchors;
  for (int k = 0; k < 3; ++k) {
    const int rows = static_cast<int>(std::ceil(static_cast<double>(H) / steps[k]));
    const int cols = static_cast<int>(std::ceil(static_cast<double>(W) / steps[k]));
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j)
        for (double min_size : min_sizes[k]) {
          const double v[4] = {(j + 0.5) * steps[k] / W, (i + 0.5) * steps[k] / H, min_size / W, min_size / H};
          for (double x : v) {
            const float f = static_cast<float>(x);
            anchors.push_back(clip ? std::min(std::max(f, 0.f), 1.f) : f);
          }
        }
  }
  return anchors;
}

static void CheckPriors() {
  const int64_t count640 = PriorCount(RetinaFacePriorParams(640, 640));
  CHECK(count640 == 16800, "640x640: %lld", (long long)count640);
  CHECK(PriorCount(RetinaFacePriorParams(97, 131)) == 608, "97x131");
  CHECK(PriorCount(RetinaFacePriorParams(131, 97)) == 608, "131x97");
  CHECK(PriorCount(RetinaFacePriorParams(1, 1)) == 6, "1x1");
  const int sizes[][2] = {{640, 640}, {97, 131}, {131, 97}, {1, 1}, {8, 8}, {9, 17}, {1920, 1080}, {33, 1000}};
  for (const auto& s : sizes)
    for (bool clip : {false, true}) {
      PriorParams p = RetinaFacePriorParams(s[0], s[1]);
      p.clip = clip;
      std::vector<float> got(PriorCount(p) * 4, NAN);
      GeneratePriors(p, got.data());
      const auto ref = ReferencePriors(s[0], s[1], clip);
      CHECK(got == ref, "priors %dx%d clip %d differ (%zu vs %zu values)", s[0], s[1], clip, got.size(), ref.size());
    }
  PriorParams p = RetinaFacePriorParams(640, 480);
  std::vector<float> pr(PriorCount(p) * 4);
  GeneratePriors(p, pr.data());
  CHECK(pr[0] == 4.f / 640 && pr[1] == 4.f / 480 && pr[2] == 16.f / 640 && pr[3] == 16.f / 480 && pr[6] == 32.f / 640,
        "first priors %g %g %g %g", pr[0], pr[1], pr[2], pr[3]);
}

// ---- decoding ----

static void CheckRetinaDecode() {
  for (const auto& s : {std::pair<int, int>{640, 480}, {97, 131}, {16, 16}}) {
    const int W = s.first, H = s.second;
    const PriorParams pp = RetinaFacePriorParams(W, H);
    const int64_t A = PriorCount(pp);
    std::vector<float> priors(A * 4);
    GeneratePriors(pp, priors.data());
    std::vector<float> conf(A * 2);
    auto u = RandomVector(A, W * 7 + H, 0.f, 1.f);
    for (int64_t a = 0; a < A; ++a) conf[2 * a] = 1 - u[a], conf[2 * a + 1] = u[a];
    RetinaDecodeParams p;
    p.image_width = W, p.image_height = H, p.score_threshold = 0.7f;
    std::vector<float> boxes(A * 4), scores(A), landmarks(A * 10);
    std::vector<int32_t> anchor(A);
    Candidates out{boxes.data(), scores.data(), landmarks.data(), anchor.data()};

    // Zero offsets give back the priors as pixel boxes, landmarks at the centres.
    std::vector<float> zeros(A * 10, 0.f);
    int64_t n = DecodeRetinaFace(p, priors.data(), A, zeros.data(), conf.data(), zeros.data(), out);
    double worst = 0;
    int64_t expected = 0;
    for (int64_t a = 0; a < A; ++a) expected += conf[2 * a + 1] > 0.7f;
    CHECK(n == expected && n > 0, "zero offsets: %lld of %lld kept", (long long)n, (long long)expected);
    for (int64_t i = 0; i < n; ++i) {
      const float* pr = &priors[4 * anchor[i]];
      const double want[4] = {(pr[0] - pr[2] / 2) * W, (pr[1] - pr[3] / 2) * H, (pr[0] + pr[2] / 2) * W, (pr[1] + pr[3] / 2) * H};
      for (int k = 0; k < 4; ++k) worst = std::max(worst, std::fabs(boxes[4 * i + k] - want[k]));
      for (int k = 0; k < 5; ++k)
        worst = std::max({worst, std::fabs(landmarks[10 * i + 2 * k] - static_cast<double>(pr[0]) * W),
                          std::fabs(landmarks[10 * i + 2 * k + 1] - static_cast<double>(pr[1]) * H)});
      CHECK(scores[i] == conf[2 * anchor[i] + 1] && (i == 0 || anchor[i] > anchor[i - 1]), "order/score at %lld", (long long)i);
    }
    CHECK(worst < 1e-3, "zero offsets: boxes off by %g px", worst);

    // Random offsets against the formulas in double.
    auto loc = RandomVector(A * 4, W + 1, -2.f, 2.f), landms = RandomVector(A * 10, W + 2, -3.f, 3.f);
    n = DecodeRetinaFace(p, priors.data(), A, loc.data(), conf.data(), landms.data(), out);
    CHECK(n == expected, "random: %lld kept", (long long)n);
    std::vector<float> ref, got;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = anchor[i];
      const double pcx = priors[4 * a], pcy = priors[4 * a + 1], pw = priors[4 * a + 2], ph = priors[4 * a + 3];
      const double cx = pcx + loc[4 * a] * 0.1 * pw, cy = pcy + loc[4 * a + 1] * 0.1 * ph;
      const double w = pw * std::exp(loc[4 * a + 2] * 0.2), h = ph * std::exp(loc[4 * a + 3] * 0.2);
      for (double v : {(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H})
        ref.push_back(static_cast<float>(v));
      for (int k = 0; k < 5; ++k) {
        ref.push_back(static_cast<float>((pcx + landms[10 * a + 2 * k] * 0.1 * pw) * W));
        ref.push_back(static_cast<float>((pcy + landms[10 * a + 2 * k + 1] * 0.1 * ph) * H));
      }
      got.insert(got.end(), &boxes[4 * i], &boxes[4 * i + 4]);
      got.insert(got.end(), &landmarks[10 * i], &landmarks[10 * i + 10]);
    }
    const double r = ToleranceRatio(got.data(), ref.data(), ref.size(), 1e-5, 1e-4);
    CHECK(r <= 1, "retina decode %dx%d: ratio %g", W, H, r);

    // Without landmarks (null outputs and input).
    Candidates lean{boxes.data(), scores.data(), nullptr, nullptr};
    CHECK(DecodeRetinaFace(p, priors.data(), A, loc.data(), conf.data(), nullptr, lean) == expected, "lean decode");
  }
}

static void CheckSsdDecode() {
  const int64_t A = 1917;
  auto centres = RandomVector(A * 2, 5, 0.f, 1.f), sizes = RandomVector(A * 2, 6, 0.05f, 0.9f);
  std::vector<float> anchors(A * 4);
  for (int64_t a = 0; a < A; ++a) {
    anchors[4 * a] = centres[2 * a], anchors[4 * a + 1] = centres[2 * a + 1];
    anchors[4 * a + 2] = sizes[2 * a], anchors[4 * a + 3] = sizes[2 * a + 1];
  }
  auto deltas = RandomVector(A * 4, 7, -3.f, 3.f), logits = RandomVector(A * 3, 8, -4.f, 4.f);
  for (int variant = 0; variant < 4; ++variant) {
    SsdDecodeParams p;
    p.image_width = 512, p.image_height = 384;
    p.yx_order = variant & 1, p.clip = variant & 2;
    p.score_stride = 3, p.score_index = 1, p.score_sigmoid = true, p.score_threshold = 0.6f;
    std::vector<float> boxes(A * 4), scores(A);
    std::vector<int32_t> anchor(A);
    const Candidates out{boxes.data(), scores.data(), nullptr, anchor.data()};
    const int64_t n = DecodeSsd(p, anchors.data(), A, deltas.data(), logits.data(), out);
    std::vector<float> ref_boxes, ref_scores, got_boxes(boxes.begin(), boxes.begin() + 4 * n);
    std::vector<int32_t> ref_anchor;
    for (int64_t a = 0; a < A; ++a) {
      const double s = 1 / (1 + std::exp(-static_cast<double>(logits[3 * a + 1])));
      if (!(static_cast<float>(s) > 0.6f)) continue;
      const float* d = &deltas[4 * a];
      const double dx = p.yx_order ? d[1] : d[0], dy = p.yx_order ? d[0] : d[1];
      const double dw = p.yx_order ? d[3] : d[2], dh = p.yx_order ? d[2] : d[3];
      const double cx = anchors[4 * a] + dx / 10 * anchors[4 * a + 2], cy = anchors[4 * a + 1] + dy / 10 * anchors[4 * a + 3];
      const double w = anchors[4 * a + 2] * std::exp(dw / 5), h = anchors[4 * a + 3] * std::exp(dh / 5);
      auto c = [&](double v) { return p.clip ? std::min(std::max(v, 0.0), 1.0) : v; };
      for (double v : {c(cx - w / 2) * 512, c(cy - h / 2) * 384, c(cx + w / 2) * 512, c(cy + h / 2) * 384})
        ref_boxes.push_back(static_cast<float>(v));
      ref_scores.push_back(static_cast<float>(s));
      ref_anchor.push_back(static_cast<int32_t>(a));
    }
    CHECK(n == static_cast<int64_t>(ref_anchor.size()) && std::equal(ref_anchor.begin(), ref_anchor.end(), anchor.begin()),
          "ssd variant %d: %lld vs %zu candidates", variant, (long long)n, ref_anchor.size());
    if (n != static_cast<int64_t>(ref_anchor.size())) continue;
    CHECK(ToleranceRatio(got_boxes.data(), ref_boxes.data(), ref_boxes.size(), 1e-5, 1e-3) <= 1, "ssd boxes variant %d", variant);
    CHECK(ToleranceRatio(scores.data(), ref_scores.data(), n, 1e-6, 1e-7) <= 1, "ssd scores variant %d", variant);
  }
}

// ---- NMS ----

static float ReferenceIou(const float* a, const float* b, bool plus_one) {
  const float one = plus_one ? 1.f : 0.f;
  const float area_a = (a[2] - a[0] + one) * (a[3] - a[1] + one), area_b = (b[2] - b[0] + one) * (b[3] - b[1] + one);
  const float w = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]) + one);
  const float h = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]) + one);
  const float inter = w * h;
  return inter / (area_a + area_b - inter);
}

// Order by score with a stable sort (ties keep index order), then keep each candidate that no
// already-kept one overlaps by more than the threshold.
static std::vector<int32_t> ReferenceNms(const NmsParams& p, const std::vector<float>& boxes, const std::vector<float>& scores) {
  std::vector<int32_t> order;
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] > p.score_threshold) order.push_back(static_cast<int32_t>(i));
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return scores[a] > scores[b]; });
  if (p.pre_top_k > 0 && static_cast<int>(order.size()) > p.pre_top_k) order.resize(p.pre_top_k);
  std::vector<int32_t> kept;
  for (int32_t i : order) {
    bool overlaps = false;
    for (int32_t j : kept) overlaps |= ReferenceIou(&boxes[4 * j], &boxes[4 * i], p.plus_one) > p.iou_threshold;
    if (!overlaps) kept.push_back(i);
    if (p.max_output > 0 && static_cast<int>(kept.size()) == p.max_output) break;
  }
  return kept;
}

static std::vector<int32_t> RunNms(const NmsParams& p, const std::vector<float>& boxes, const std::vector<float>& scores) {
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<uint32_t> ws((NmsWorkspaceSize(n) + 3) / 4);
  std::vector<int32_t> kept(n + 1, -7);
  const int64_t k = Nms(p, boxes.data(), scores.data(), n, kept.data(), ws.data());
  kept.resize(k);
  return kept;
}

static void CheckNms() {
  std::mt19937 rng(11);
  int trials = 0;
  for (int n : {0, 1, 2, 7, 60, 400, 2000})
    for (int kind = 0; kind < 3; ++kind)  // continuous boxes; integer boxes; integer boxes, few score levels
      for (bool plus_one : {false, true})
        for (float iou : {0.3f, 0.4f, 0.5f})
          for (int limits = 0; limits < 3; ++limits) {
            std::vector<float> boxes(4 * n), scores(n);
            std::uniform_real_distribution<float> pos(0, 200), size(1, 60), unit(0, 1);
            for (int i = 0; i < n; ++i) {
              float x = pos(rng), y = pos(rng), w = size(rng), h = size(rng);
              if (kind > 0)  // a coarse integer grid: many equal and touching boxes, IoUs exactly at thresholds
                x = std::floor(x / 8) * 8, y = std::floor(y / 8) * 8, w = std::floor(w / 4) * 4, h = std::floor(h / 4) * 4;
              boxes[4 * i] = x, boxes[4 * i + 1] = y, boxes[4 * i + 2] = x + w, boxes[4 * i + 3] = y + h;
              scores[i] = kind == 2 ? static_cast<float>(rng() % 5) / 5 : unit(rng);
            }
            NmsParams p;
            p.iou_threshold = iou, p.plus_one = plus_one;
            if (limits == 1) p.score_threshold = 0.3f, p.max_output = 10;
            if (limits == 2) p.pre_top_k = std::max(1, n / 3), p.score_threshold = 0.f;
            const auto got = RunNms(p, boxes, scores), ref = ReferenceNms(p, boxes, scores);
            CHECK(got == ref, "nms n=%d kind=%d +1=%d iou=%g limits=%d: %zu vs %zu kept", n, kind, plus_one, iou, limits,
                  got.size(), ref.size());
            ++trials;
          }
  CHECK(trials == 7 * 3 * 2 * 3 * 3, "trials %d", trials);

  // The +1 convention decides this pair: IoU 50/100 = 0.5 with it (kept at 0.5), 36/81 without.
  const std::vector<float> boxes = {0, 0, 9, 9, 0, 0, 9, 4};
  const std::vector<float> scores = {0.9f, 0.8f};
  NmsParams p;
  p.iou_threshold = 0.5f, p.plus_one = true;
  CHECK(RunNms(p, boxes, scores).size() == 2, "IoU exactly at the threshold is not suppressed");
  p.iou_threshold = 0.49f;
  CHECK(RunNms(p, boxes, scores).size() == 1, "+1: IoU 0.5 > 0.49");
  p.plus_one = false;
  CHECK(RunNms(p, boxes, scores).size() == 2, "continuous: IoU 0.444 < 0.49");
  // Equal scores: the lower index wins, whatever the order of the input.
  const std::vector<float> twins = {10, 10, 50, 50, 11, 11, 51, 51, 10, 10, 50, 50};
  p.iou_threshold = 0.5f;
  const auto kept = RunNms(p, twins, {0.5f, 0.5f, 0.5f});
  CHECK(kept.size() == 1 && kept[0] == 0, "ties: kept %zu, first %d", kept.size(), kept.empty() ? -1 : kept[0]);
}

int main() {
  CheckPriors();
  CheckRetinaDecode();
  CheckSsdDecode();
  CheckNms();
  return Finish("test_vision_detect");
}
