// The engine end to end on models written in C++: every Conv path (depthwise 3×3, pointwise, implicit
// im2col, grouped) with BatchNorm folding and fused activations against a naive convolution; plan
// reuse across shapes; and malformed model bytes (every truncation, random corruption) that must
// raise FaceException, never crash.
#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "engine/arena_layout.h"
#include "engine/engine.h"
#include "onnx_writer.h"
#include "reference.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

struct ConvCase {
  int64_t N, C, H, W, M, K, stride, pad, dil, group;
  bool bn;
  const char* act;  // "", "Relu", "LeakyRelu", "Clip"
};

static void CheckConv(const ConvCase& cc, uint32_t seed) {
  OnnxWriter m;
  m.Input("x", {-1, cc.C, -1, -1});
  auto w = RandomVector(cc.M * (cc.C / cc.group) * cc.K * cc.K, seed, -0.5f, 0.5f);
  auto b = RandomVector(cc.M, seed + 1);
  m.Initializer("w", {cc.M, cc.C / cc.group, cc.K, cc.K}, w);
  m.Initializer("b", {cc.M}, b);
  m.Node("Conv", {"x", "w", "b"}, {"conv"},
         {Attr::Is("kernel_shape", {cc.K, cc.K}), Attr::Is("strides", {cc.stride, cc.stride}),
          Attr::Is("pads", {cc.pad, cc.pad, cc.pad, cc.pad}), Attr::Is("dilations", {cc.dil, cc.dil}),
          Attr::I("group", cc.group)});
  std::string last = "conv";
  auto gamma = RandomVector(cc.M, seed + 2, 0.5f, 1.5f), beta = RandomVector(cc.M, seed + 3),
       mean = RandomVector(cc.M, seed + 4), var = RandomVector(cc.M, seed + 5, 0.5f, 1.5f);
  if (cc.bn) {
    m.Initializer("g", {cc.M}, gamma);
    m.Initializer("be", {cc.M}, beta);
    m.Initializer("mu", {cc.M}, mean);
    m.Initializer("var", {cc.M}, var);
    m.Node("BatchNormalization", {last, "g", "be", "mu", "var"}, {"bn"}, {Attr::F("epsilon", 1e-3f)});
    last = "bn";
  }
  std::string act = cc.act;
  if (act == "Relu") m.Node("Relu", {last}, {"act"});
  else if (act == "LeakyRelu") m.Node("LeakyRelu", {last}, {"act"}, {Attr::F("alpha", 0.1f)});
  else if (act == "Clip") { m.Initializer("lo", {}, {0.f}); m.Initializer("hi", {}, {0.3f}); m.Node("Clip", {last, "lo", "hi"}, {"act"}); }
  if (!act.empty()) last = "act";
  m.Output(last);
  auto bytes = m.Bytes();
  auto engine = Engine::Load(bytes.data(), bytes.size(), EngineOptions{2});
  // Two input sizes through one engine: each gets its own plan.
  for (int64_t grow : {0, 3}) {
    const int64_t H = cc.H + grow, W = cc.W + grow * 2;
    auto x = RandomVector(cc.N * cc.C * H * W, seed + 10 + static_cast<uint32_t>(grow));
    int64_t OH, OW;
    auto ref = ReferenceConv(x, cc.N, cc.C, H, W, w, cc.M, cc.K, cc.K, &b, cc.group, cc.stride, cc.pad, cc.pad,
                             cc.pad, cc.pad, cc.dil, &OH, &OW);
    const int64_t plane = OH * OW;
    for (int64_t i = 0; i < static_cast<int64_t>(ref.size()); ++i) {
      const int64_t ch = (i / plane) % cc.M;
      float v = ref[i];
      if (cc.bn) v = (v - mean[ch]) / std::sqrt(var[ch] + 1e-3f) * gamma[ch] + beta[ch];
      if (act == "Relu") v = std::max(v, 0.f);
      else if (act == "LeakyRelu") v = v >= 0 ? v : 0.1f * v;
      else if (act == "Clip") v = std::min(std::max(v, 0.f), 0.3f);
      ref[i] = v;
    }
    auto out = engine->Run({InputView{x.data(), {cc.N, cc.C, H, W}}});
    CHECK(out.size() == 1 && out[0].shape == (Shape{cc.N, cc.M, OH, OW}), "shape %s", ShapeToString(out[0].shape).c_str());
    if (out.size() != 1 || out[0].size() != static_cast<int64_t>(ref.size())) continue;
    const double k = std::sqrt(static_cast<double>(cc.C / cc.group * cc.K * cc.K));
    double r = ToleranceRatio(out[0].data.get(), ref.data(), ref.size(), 2e-5 * k, 2e-5 * k);
    CHECK(r <= 1, "conv N=%lld C=%lld H=%lld W=%lld M=%lld K=%lld s=%lld p=%lld d=%lld g=%lld bn=%d act=%s: ratio %g",
          (long long)cc.N, (long long)cc.C, (long long)H, (long long)W, (long long)cc.M, (long long)cc.K,
          (long long)cc.stride, (long long)cc.pad, (long long)cc.dil, (long long)cc.group, cc.bn, cc.act, r);
  }
}

// A depthwise conv read only by a 1×1 conv: the engine fuses the pair (SeparableConv) and, in NCHW16c,
// computes the depthwise output band by band. Checked against the two reference convs, with the
// activations of both parts, at sizes whose bands do not divide the rows.
struct SeparableCase {
  int64_t N, C, H, W, M, K, stride;
  const char* dw_act;  // "" or "Relu"
  bool pw_relu;
};

static void CheckSeparable(const SeparableCase& sc, uint32_t seed) {
  OnnxWriter m;
  m.Input("x", {-1, sc.C, -1, -1});
  auto dw_w = RandomVector(sc.C * sc.K * sc.K, seed, -0.5f, 0.5f), dw_b = RandomVector(sc.C, seed + 1);
  auto pw_w = RandomVector(sc.M * sc.C, seed + 2, -0.3f, 0.3f), pw_b = RandomVector(sc.M, seed + 3);
  m.Initializer("dw_w", {sc.C, 1, sc.K, sc.K}, dw_w);
  m.Initializer("dw_b", {sc.C}, dw_b);
  m.Initializer("pw_w", {sc.M, sc.C, 1, 1}, pw_w);
  m.Initializer("pw_b", {sc.M}, pw_b);
  const int64_t pad = sc.K / 2;
  m.Node("Conv", {"x", "dw_w", "dw_b"}, {"dw"},
         {Attr::Is("kernel_shape", {sc.K, sc.K}), Attr::Is("strides", {sc.stride, sc.stride}),
          Attr::Is("pads", {pad, pad, pad, pad}), Attr::I("group", sc.C)});
  std::string mid = "dw";
  if (std::string(sc.dw_act) == "Relu") { m.Node("Relu", {"dw"}, {"dw_act"}); mid = "dw_act"; }
  m.Node("Conv", {mid, "pw_w", "pw_b"}, {"pw"}, {Attr::Is("kernel_shape", {1, 1})});
  std::string last = "pw";
  if (sc.pw_relu) { m.Node("Relu", {"pw"}, {"out"}); last = "out"; }
  m.Output(last);
  auto bytes = m.Bytes();
  auto engine = Engine::Load(bytes.data(), bytes.size(), EngineOptions{2});
  auto x = RandomVector(sc.N * sc.C * sc.H * sc.W, seed + 4);
  int64_t OH, OW, OH2, OW2;
  auto ref = ReferenceConv(x, sc.N, sc.C, sc.H, sc.W, dw_w, sc.C, sc.K, sc.K, &dw_b, sc.C, sc.stride, pad, pad, pad, pad, 1, &OH, &OW);
  if (std::string(sc.dw_act) == "Relu") for (float& v : ref) v = std::max(v, 0.f);
  ref = ReferenceConv(ref, sc.N, sc.C, OH, OW, pw_w, sc.M, 1, 1, &pw_b, 1, 1, 0, 0, 0, 0, 1, &OH2, &OW2);
  if (sc.pw_relu) for (float& v : ref) v = std::max(v, 0.f);
  auto out = engine->Run({InputView{x.data(), {sc.N, sc.C, sc.H, sc.W}}});
  CHECK(out.size() == 1 && out[0].shape == (Shape{sc.N, sc.M, OH, OW}), "separable shape %s", ShapeToString(out[0].shape).c_str());
  if (out.size() != 1 || out[0].size() != static_cast<int64_t>(ref.size())) return;
  const double k = std::sqrt(static_cast<double>(sc.C));
  const double r = ToleranceRatio(out[0].data.get(), ref.data(), ref.size(), 2e-5 * k, 2e-5 * k);
  CHECK(r <= 1, "separable N=%lld C=%lld H=%lld W=%lld M=%lld K=%lld s=%lld: ratio %g", (long long)sc.N, (long long)sc.C,
        (long long)sc.H, (long long)sc.W, (long long)sc.M, (long long)sc.K, (long long)sc.stride, r);
}

// The arena layout both planners use: values alive at the same time never share bytes; values that
// are not reuse space (here the 3rd fits where the 1st was, the 4th is alive with everything).
static void CheckArenaLayout() {
  const std::vector<ArenaValue> values = {{64, 0, 1}, {32, 1, 2}, {48, 2, 3}, {16, 0, 3}};
  std::vector<int64_t> offsets;
  const int64_t size = LayOutArena(values, &offsets);
  for (size_t a = 0; a < values.size(); ++a)
    for (size_t b = a + 1; b < values.size(); ++b) {
      const bool live_together = !(values[a].last_read < values[b].first_write || values[b].last_read < values[a].first_write);
      const bool apart = offsets[a] + values[a].size <= offsets[b] || offsets[b] + values[b].size <= offsets[a];
      CHECK(!live_together || apart, "values %zu and %zu overlap while both alive", a, b);
    }
  CHECK(size == 64 + 32 + 16, "arena of %lld (the 48 reuses the 64's space)", (long long)size);
}

static std::vector<uint8_t> SmallModel() {
  OnnxWriter m;
  m.Input("x", {1, 4, 8, 8});
  m.Initializer("w", {4, 1, 3, 3}, RandomVector(36, 99));
  m.Initializer("shape", {2}, {1.f, -1.f});
  m.Node("Conv", {"x", "w"}, {"y"}, {Attr::Is("kernel_shape", {3, 3}), Attr::Is("pads", {1, 1, 1, 1}), Attr::I("group", 4)});
  m.Node("Relu", {"y"}, {"z"});
  m.Output("z");
  return m.Bytes();
}

static void CheckMalformed() {
  const auto good = SmallModel();
  int faces = 0, others = 0;
  for (size_t n = 0; n < good.size(); ++n) {  // every truncation
    try {
      auto e = Engine::Load(good.data(), n, EngineOptions{1});
      auto x = RandomVector(4 * 64, 1);
      e->Run({InputView{x.data(), {1, 4, 8, 8}}});
    } catch (const FaceException&) {
      ++faces;
    } catch (...) {
      ++others;
    }
  }
  CHECK(others == 0, "truncations raised %d non-FaceException errors", others);
  CHECK(faces >= static_cast<int>(good.size()) - 2, "only %d of %zu truncations were rejected", faces, good.size());
  std::mt19937 rng(7);
  others = 0;
  for (int trial = 0; trial < 3000; ++trial) {  // random byte corruption: reject or run, never crash
    auto bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<uint8_t>(rng());
    try {
      auto e = Engine::Load(bad.data(), bad.size(), EngineOptions{1});
      auto x = RandomVector(4 * 64, 1);
      e->Run({InputView{x.data(), {1, 4, 8, 8}}});
    } catch (const FaceException&) {
    } catch (...) {
      ++others;
    }
  }
  CHECK(others == 0, "corrupted models raised %d non-FaceException errors", others);
}

static void CheckUnsupportedOp() {
  OnnxWriter m;
  m.Input("x", {1, 4});
  m.Node("Einsum", {"x"}, {"y"}, {Attr::S("equation", "ij->ji")});
  m.Output("y");
  auto bytes = m.Bytes();
  try {
    Engine::Load(bytes.data(), bytes.size(), EngineOptions{1});
    CHECK(false, "Einsum was accepted");
  } catch (const FaceException& e) {
    std::string msg = e.what();
    CHECK(e.code() == ErrorCode::Model && msg.find("Einsum") != std::string::npos && msg.find("y_node") != std::string::npos,
          "message: %s", msg.c_str());
  }
}

// Runs x through the engine and expects E_INPUT naming `what` (the first non-finite value).
static void ExpectNonFinite(Engine& engine, const InputView& x, const std::string& what) {
  try {
    engine.Run({x});
    CHECK(false, "%s accepted", what.c_str());
  } catch (const FaceException& ex) {
    CHECK(ex.code() == ErrorCode::Input && std::string(ex.what()).find(what) != std::string::npos, "%s", ex.what());
  }
}

static void CheckNonFinite() {
  auto bytes = SmallModel();
  auto e = Engine::Load(bytes.data(), bytes.size(), EngineOptions{1});
  auto x = RandomVector(4 * 64, 1);
  x[17] = NAN;
  ExpectNonFinite(*e, InputView{x.data(), {1, 4, 8, 8}}, "NaN at index 17");
  // A large input is scanned in chunks by the pool's threads: still the first bad value is named.
  OnnxWriter m;
  m.Input("x", {-1, 4, -1, -1});
  m.Node("Relu", {"x"}, {"y"});
  m.Output("y");
  auto relu = m.Bytes();
  auto big = Engine::Load(relu.data(), relu.size(), EngineOptions{2});
  std::vector<float> frame(4 * 1024 * 1024, 0.5f);
  frame[3500000] = NAN;
  frame[3000001] = INFINITY;
  ExpectNonFinite(*big, InputView{frame.data(), {1, 4, 1024, 1024}}, "Infinity at index 3000001");
}

int main() {
  const ConvCase cases[] = {
      {1, 8, 13, 17, 8, 3, 1, 1, 1, 8, true, "LeakyRelu"},   // depthwise stride 1
      {2, 16, 20, 21, 16, 3, 2, 1, 1, 16, true, "Relu"},     // depthwise stride 2, odd width
      {1, 5, 1, 1, 5, 3, 1, 1, 1, 5, false, ""},             // depthwise on 1×1
      {3, 40, 10, 10, 40, 3, 1, 1, 1, 40, true, "Clip"},     // depthwise, batched small maps (rows shorter than a vector)
      {2, 24, 10, 10, 24, 3, 2, 1, 1, 24, false, "Relu"},    // depthwise stride 2 to 5×5
      {1, 4, 6, 16, 4, 3, 1, 1, 1, 4, false, ""},            // depthwise, width = one AVX-512 vector
      {1, 32, 9, 11, 24, 1, 1, 0, 1, 1, true, "Clip"},       // pointwise (GEMM in place)
      {3, 3, 33, 31, 8, 3, 2, 1, 1, 1, true, "LeakyRelu"},   // RGB stem, 8 outputs: the direct NCHW kernel
      {2, 3, 67, 70, 8, 3, 2, 1, 1, 1, true, "Relu"},        // the same, rows of two vectors and a part
      {1, 3, 20, 40, 12, 3, 1, 1, 1, 1, false, "Clip"},      // direct, stride 1, 8 + 4 output channels
      {1, 2, 18, 50, 5, 5, 2, 2, 1, 1, false, ""},           // direct, 5×5 stride 2
      {2, 64, 6, 40, 4, 1, 1, 0, 1, 1, false, ""},           // direct, 1×1 (RetinaFace's class head: 64 → 4)
      {1, 20, 5, 33, 10, 1, 1, 0, 1, 1, true, "Relu"},       // direct, 1×1, 8 + 2 output channels
      {1, 3, 9, 15, 8, 3, 2, 1, 1, 1, false, "Relu"},        // output rows narrower than a vector: im2col
      {1, 16, 10, 10, 20, 5, 1, 2, 1, 1, false, "Relu"},     // 5×5
      {1, 8, 12, 12, 8, 3, 1, 2, 2, 1, false, ""},           // dilation 2
      {2, 12, 7, 9, 18, 3, 1, 1, 1, 3, true, ""},            // grouped
      {1, 64, 20, 20, 128, 1, 1, 0, 1, 1, true, "Relu"},     // larger pointwise
      {1, 64, 40, 40, 32, 3, 1, 1, 1, 1, false, ""},         // SSH-like 3×3
      {3, 48, 5, 7, 100, 1, 1, 0, 1, 1, true, "Clip"},       // pointwise on a small image: transposed GEMM
      {1, 200, 2, 3, 17, 1, 1, 0, 1, 1, false, "Relu"},      // the same with ragged panels
      // NCHW16c (whole channel blocks): the blocked direct kernels, output reordered back to NCHW.
      {1, 16, 13, 17, 16, 3, 1, 1, 1, 16, true, "LeakyRelu"},  // depthwise stride 1
      {2, 32, 20, 21, 32, 3, 2, 1, 1, 32, false, "Relu"},      // depthwise stride 2, odd width
      {1, 32, 9, 11, 32, 5, 1, 2, 1, 32, false, "Clip"},       // depthwise 5×5
      {1, 16, 12, 12, 16, 3, 1, 2, 2, 16, false, ""},          // depthwise dilation 2
      {1, 16, 1, 1, 16, 3, 1, 1, 1, 16, false, ""},            // depthwise on 1×1 (stays NCHW)
      {1, 16, 2, 3, 16, 3, 1, 3, 1, 16, true, "Relu"},         // depthwise, padding wider than the kernel
      {2, 16, 11, 13, 16, 3, 2, 2, 2, 16, false, "Clip"},      // depthwise dilated and strided
      {2, 3, 33, 31, 32, 3, 2, 1, 1, 1, true, "Relu"},         // RGB stem: NCHW input, blocked output
      {1, 20, 7, 9, 32, 3, 1, 1, 1, 1, false, ""},             // input channels not whole blocks
      {1, 32, 9, 11, 48, 1, 1, 0, 1, 1, true, "Clip"},         // pointwise: the image as one row of tiles
      {3, 64, 5, 7, 64, 1, 1, 0, 1, 1, false, "Relu"},         // pointwise, batched 5×7 maps
      {1, 64, 20, 20, 64, 3, 1, 1, 1, 1, false, ""},           // dense 3×3
      {1, 16, 10, 10, 80, 5, 1, 2, 1, 1, true, "LeakyRelu"},   // 5×5, output blocks not a tile multiple
      {1, 32, 12, 12, 16, 3, 2, 2, 2, 1, false, ""},           // dilated and strided
      {1, 16, 3, 3, 32, 3, 1, 0, 1, 1, false, "Relu"},         // 1×1 output map
      {11, 64, 80, 80, 64, 1, 1, 0, 1, 1, false, "Relu"},      // output ≥ 16 MiB: streaming stores
  };
  uint32_t seed = 100;
  for (const auto& c : cases) CheckConv(c, seed += 20);
  const SeparableCase separable[] = {
      {1, 32, 80, 80, 64, 3, 1, "Relu", true},   // FaceNet's first block (bands of 6 rows, a short last one)
      {3, 64, 37, 41, 128, 3, 2, "Relu", false}, // stride 2, odd sizes: a short last band
      {2, 128, 5, 130, 128, 3, 1, "", true},     // one row per band
      {1, 16, 20, 23, 32, 5, 1, "Relu", true},   // 5×5
      {11, 32, 80, 80, 64, 3, 1, "Relu", true},  // output ≥ 16 MiB: the bands' pointwise stores stream
      // Pointwise weights over 64 KiB: bands of whole images, or of rows where an image's depthwise
      // output is over 512 KiB. Fewer bands than 2 × threads: 2 × threads / N bands of equal rows.
      {4, 256, 20, 20, 256, 3, 1, "Relu", true},   // FaceNet's 256-channel block, an image per band
      {5, 128, 40, 40, 256, 3, 2, "", false},      // stride 2
      {2, 256, 64, 61, 128, 3, 1, "Relu", true},   // 8 rows per band, a short last band
      {1, 512, 10, 10, 512, 3, 1, "Relu", true},   // one image: 4 bands of 2 or 3 rows
      // Bands of under 16 pixels: parts of the output channels instead, each with the whole depthwise.
      {3, 512, 5, 5, 1024, 3, 1, "", true},        // three images on two threads: 2 parts each
      {1, 1024, 5, 5, 1024, 3, 2, "Relu", true},   // 3×3 output, one image: 4 parts
      {1, 16, 4, 7, 32, 3, 1, "", true},           // small weights, one 4-row image: a band per row
      // Channels that are not whole blocks: NCHW depthwise bands, NCHW16c pointwise output.
      {1, 8, 40, 37, 16, 3, 1, "Relu", true},      // RetinaFace-mnet0.25's 8-channel block
      {2, 24, 33, 35, 32, 3, 2, "", false},        // stride 2, odd sizes
      {1, 8, 2, 9, 32, 3, 1, "Relu", false},       // two rows: a band per row
      {1, 8, 20, 21, 16, 5, 1, "", true},          // 5×5 depthwise: no NCHW band kernel, unfused
  };
  for (const auto& c : separable) CheckSeparable(c, seed += 20);
  CheckArenaLayout();
  CheckMalformed();
  CheckUnsupportedOp();
  CheckNonFinite();
  return Finish("test_engine");
}
