// The CUDA network ops (native/ops/*.cu) against the CPU ops — each op run through the CPU engine as a
// one-node ONNX model — on random inputs over a matrix of shapes, then timings at realistic sizes.
// Exits 77 (ctest: skipped) when no CUDA device is usable. Tolerances (ratio = |gpu − cpu| /
// (atol + rtol·|cpu|) ≤ 1):
//   conv / gemm fp32     rtol = atol = 2e-5·√K (K = the dot-product length; the CPU sums in another order)
//   conv / gemm fp16     x and w rounded to fp16 first, the CPU run on the rounded values; the GPU
//                        accumulates in fp32 and rounds y to fp16: rtol = 2e-3 (fp16 output rounding is
//                        ≤ 4.9e-4 relative), atol = 1e-3 + 2e-5·√K. Tensor-core and SIMT results are
//                        also compared with each other (same bound). The error against the unrounded
//                        fp32 result is printed (informational: it is the fp16 input quantisation).
//   pool (windows), resize, concat, binary ops, Relu / Clip   equal (the CPU's arithmetic, unfused);
//   global pool, softmax, L2 norm, Sigmoid   rtol 1e-5, atol 1e-6 (another summation order / exp rounding).
// `test_cuda_ops --no-bench` (or FACESIGHT_GPU_BENCH=0) skips the timings.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "common/cuda_util.h"
#include "engine/engine.h"
#include "onnx_writer.h"
#include "ops/concat_cuda.h"
#include "ops/conv_cuda.h"
#include "ops/elementwise_cuda.h"
#include "ops/gemm_cuda.h"
#include "ops/pool_cuda.h"
#include "ops/resize_cuda.h"
#include "ops/softmax_reduce_cuda.h"
#include "cuda_test_util.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

namespace {

// ---- Plumbing ---------------------------------------------------------------------------------------

// IEEE binary16 on the host (round to nearest even), so the test needs no CUDA headers for it.
uint16_t ToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | (absx > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to ≥ 65520: inf
  if (absx < 0x38800000u) {                                                // subnormal or zero in fp16
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    const uint32_t s = 126 - (absx >> 23);  // value = mant · 2^(e − 150) = h · 2^−24
    uint32_t h = mant >> s;
    const uint32_t rem = mant & ((1u << s) - 1), half = 1u << (s - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = ((absx - 0x38000000u) >> 13);
  const uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}
float FromHalf(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  float f;
  if (e == 0) f = std::ldexp(static_cast<float>(m), -24);
  else if (e == 31) f = m ? NAN : INFINITY;
  else f = std::ldexp(static_cast<float>(m | 0x400u), static_cast<int>(e) - 25);
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= sign;
  std::memcpy(&f, &bits, 4);
  return f;
}
std::vector<uint16_t> ToHalf(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = ToHalf(v[i]);
  return h;
}
std::vector<float> FromHalf(const std::vector<uint16_t>& h) {
  std::vector<float> v(h.size());
  for (size_t i = 0; i < h.size(); ++i) v[i] = FromHalf(h[i]);
  return v;
}
std::vector<float> RoundToHalf(const std::vector<float>& v) { return FromHalf(ToHalf(v)); }

double Ratio(const std::vector<float>& got, const std::vector<float>& want, double rtol, double atol) {
  if (got.size() != want.size()) return INFINITY;
  return ToleranceRatio(got.data(), want.data(), want.size(), rtol, atol);
}
bool Equal(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return true;
}

// ---- The CPU op: a one-node (or two-node) model through the engine -----------------------------------

struct HostInput {
  std::string name;
  Shape shape;
  std::vector<float> data;
};

std::vector<float> RunCpu(const std::vector<HostInput>& inputs, const std::function<void(OnnxWriter&)>& build,
                          Shape* out_shape = nullptr, int64_t opset = 13) {
  OnnxWriter m;
  for (const auto& in : inputs) m.Input(in.name, in.shape);
  build(m);
  m.Output("y");
  const auto bytes = m.Bytes(opset);
  auto engine = Engine::Load(bytes.data(), bytes.size(), EngineOptions{2});
  std::vector<InputView> views;
  for (const auto& in : inputs) views.push_back(InputView{in.data.data(), in.shape});
  auto out = engine->Run(views);
  if (out_shape) *out_shape = out[0].shape;
  return std::vector<float>(out[0].data.get(), out[0].data.get() + out[0].size());
}

const char* ActName(ActKind k) {
  switch (k) {
    case ActKind::Relu: return "relu";
    case ActKind::Leaky: return "leaky";
    case ActKind::Clip: return "clip";
    case ActKind::PRelu: return "prelu";
    default: return "none";
  }
}

// ---- Conv ---------------------------------------------------------------------------------------------

struct ConvCase {
  int64_t N, C, H, W, M, KH, KW, stride, pad, dil, group;
  ActKind act;
};

// CPU conv (+ activation node) on x, w; returns y and fills the GPU params.
std::vector<float> CpuConv(const ConvCase& cc, const std::vector<float>& x, const std::vector<float>& w,
                           const std::vector<float>& bias, const std::vector<float>& slope, ConvCudaParams* p) {
  Shape ys;
  const int64_t cin_g = cc.C / cc.group;
  auto y = RunCpu({{"x", {cc.N, cc.C, cc.H, cc.W}, x}}, [&](OnnxWriter& m) {
    m.Initializer("w", {cc.M, cin_g, cc.KH, cc.KW}, w);
    m.Initializer("b", {cc.M}, bias);
    m.Node("Conv", {"x", "w", "b"}, {cc.act == ActKind::None ? "y" : "conv"},
           {Attr::Is("kernel_shape", {cc.KH, cc.KW}), Attr::Is("strides", {cc.stride, cc.stride}),
            Attr::Is("pads", {cc.pad, cc.pad, cc.pad, cc.pad}), Attr::Is("dilations", {cc.dil, cc.dil}),
            Attr::I("group", cc.group)});
    switch (cc.act) {
      case ActKind::Relu: m.Node("Relu", {"conv"}, {"y"}); break;
      case ActKind::Leaky: m.Node("LeakyRelu", {"conv"}, {"y"}, {Attr::F("alpha", 0.1f)}); break;
      case ActKind::Clip:
        m.Initializer("lo", {}, {0.f});
        m.Initializer("hi", {}, {0.3f});
        m.Node("Clip", {"conv", "lo", "hi"}, {"y"});
        break;
      case ActKind::PRelu:
        m.Initializer("slope", {cc.M, 1, 1}, slope);
        m.Node("PRelu", {"conv", "slope"}, {"y"});
        break;
      default: break;
    }
  }, &ys);
  *p = ConvCudaParams{};
  p->N = cc.N, p->C = cc.C, p->H = cc.H, p->W = cc.W, p->M = cc.M, p->KH = cc.KH, p->KW = cc.KW;
  p->stride_h = p->stride_w = cc.stride;
  p->dilation_h = p->dilation_w = cc.dil;
  p->pad_top = p->pad_left = cc.pad;
  p->OH = ys[2], p->OW = ys[3];
  p->group = cc.group;
  p->act.kind = cc.act;
  if (cc.act == ActKind::Leaky) p->act.alpha = 0.1f;
  if (cc.act == ActKind::Clip) p->act.alpha = 0.f, p->act.beta = 0.3f;
  return y;
}

void CheckConv(const ConvCase& cc, bool fp16, uint32_t seed) {
  const int64_t cin_g = cc.C / cc.group, K = cin_g * cc.KH * cc.KW;
  auto x = RandomVector(cc.N * cc.C * cc.H * cc.W, seed);
  auto w = RandomVector(cc.M * K, seed + 1, -0.5f, 0.5f);
  auto bias = RandomVector(cc.M, seed + 2);
  auto slope = RandomVector(cc.M, seed + 3, 0.f, 0.5f);
  Dev<float> bias_d(bias), slope_d(slope);
  char what[200];
  ConvCudaParams p;
  std::snprintf(what, sizeof what, "conv N=%lld C=%lld %lldx%lld M=%lld k=%lldx%lld s=%lld p=%lld d=%lld g=%lld %s",
                (long long)cc.N, (long long)cc.C, (long long)cc.H, (long long)cc.W, (long long)cc.M, (long long)cc.KH,
                (long long)cc.KW, (long long)cc.stride, (long long)cc.pad, (long long)cc.dil, (long long)cc.group,
                ActName(cc.act));
  const double k = std::sqrt(static_cast<double>(K));
  if (!fp16) {
    const auto ref = CpuConv(cc, x, w, bias, slope, &p);
    Dev<float> x_d(x), w_d(w), y_d(ref.size());
    STATUS_OK(ConvCuda(p, ConvCudaPtrs{x_d.get(), w_d.get(), bias_d.get(), slope_d.get(), y_d.get()}, nullptr, 0, nullptr));
    Sync();
    const double r = Ratio(y_d.Download(), ref, 2e-5 * k, 2e-5 * k);
    CHECK(r <= 1, "%s fp32 [%s]: ratio %g", what, ConvCudaPathName(ConvCudaPathFor(p)), r);
    return;
  }
  const auto xr = RoundToHalf(x), wr = RoundToHalf(w);
  const auto ref = CpuConv(cc, xr, wr, bias, slope, &p);
  const auto ref32 = CpuConv(cc, x, w, bias, slope, &p);
  Dev<uint16_t> x_d(ToHalf(x)), w_d(ToHalf(w)), y_tc(ref.size()), y_simt(ref.size());
  p.dtype = CudaDType::kF16;
  p.math = CudaMath::kTensorCore;
  STATUS_OK(ConvCuda(p, ConvCudaPtrs{x_d.get(), w_d.get(), bias_d.get(), slope_d.get(), y_tc.get()}, nullptr, 0, nullptr));
  p.math = CudaMath::kSimt;
  STATUS_OK(ConvCuda(p, ConvCudaPtrs{x_d.get(), w_d.get(), bias_d.get(), slope_d.get(), y_simt.get()}, nullptr, 0, nullptr));
  Sync();
  const auto tc = FromHalf(y_tc.Download()), simt = FromHalf(y_simt.Download());
  const double atol = 1e-3 + 2e-5 * k;
  const double r_tc = Ratio(tc, ref, 2e-3, atol), r_simt = Ratio(simt, ref, 2e-3, atol), r_both = Ratio(tc, simt, 2e-3, atol);
  p.math = CudaMath::kTensorCore;
  CHECK(r_tc <= 1 && r_simt <= 1 && r_both <= 1, "%s fp16 [%s%s]: ratio tc %g, simt %g, tc vs simt %g", what,
        ConvCudaPathName(ConvCudaPathFor(p)), ConvCudaUsesTensorCores(p) ? ", tensor cores" : "", r_tc, r_simt, r_both);
  double worst = 0;
  for (size_t i = 0; i < ref32.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(tc[i]) - ref32[i]));
  std::printf("  %s fp16 [%s%s]: max |fp16 − fp32 cpu| = %.2e (ratio vs rounded-input cpu %.3f)\n", what,
              ConvCudaPathName(ConvCudaPathFor(p)), ConvCudaUsesTensorCores(p) ? ", tensor cores" : "", worst, r_tc);
}

const std::vector<ConvCase>& ConvCases() {
  static const std::vector<ConvCase> cases = {
      // pointwise (1×1 GEMM)
      {1, 16, 20, 20, 32, 1, 1, 1, 0, 1, 1, ActKind::Relu},
      {3, 64, 10, 10, 128, 1, 1, 1, 0, 1, 1, ActKind::None},
      {2, 8, 7, 9, 24, 1, 1, 1, 0, 1, 1, ActKind::Leaky},
      {1, 256, 5, 5, 200, 1, 1, 1, 0, 1, 1, ActKind::Clip},
      {2, 32, 6, 6, 64, 1, 1, 1, 0, 1, 2, ActKind::PRelu},
      {2, 40, 13, 11, 136, 1, 1, 1, 0, 1, 1, ActKind::PRelu},
      // depthwise 3×3
      {2, 32, 19, 17, 32, 3, 3, 1, 1, 1, 32, ActKind::Relu},
      {1, 16, 20, 20, 16, 3, 3, 2, 1, 1, 16, ActKind::PRelu},
      {1, 8, 33, 65, 8, 3, 3, 2, 0, 1, 8, ActKind::None},
      {2, 24, 9, 40, 24, 3, 3, 1, 2, 1, 24, ActKind::Leaky},
      // implicit GEMM
      {2, 8, 16, 16, 16, 3, 3, 1, 1, 1, 1, ActKind::Relu},
      {1, 3, 31, 29, 8, 3, 3, 2, 1, 1, 1, ActKind::Leaky},
      {1, 16, 12, 12, 32, 5, 5, 1, 2, 1, 1, ActKind::None},
      {1, 16, 14, 14, 16, 3, 3, 1, 2, 2, 1, ActKind::Clip},
      {1, 32, 10, 10, 64, 3, 3, 1, 1, 1, 4, ActKind::PRelu},
      {2, 3, 32, 32, 16, 7, 7, 2, 3, 1, 1, ActKind::Relu},
      {1, 64, 9, 9, 130, 3, 3, 2, 0, 1, 1, ActKind::None},
      {1, 16, 8, 8, 16, 1, 1, 2, 0, 1, 1, ActKind::Relu},  // 1×1 stride 2: implicit
      // direct (few output channels per group)
      {1, 16, 12, 12, 16, 5, 5, 1, 2, 1, 16, ActKind::Relu},
      {2, 12, 11, 11, 6, 3, 3, 1, 1, 1, 3, ActKind::PRelu},
      {1, 8, 10, 10, 4, 3, 3, 2, 1, 2, 1, ActKind::None},
  };
  return cases;
}

void TestConv(bool fp16) {
  uint32_t seed = fp16 ? 5000 : 1000;
  for (const auto& cc : ConvCases()) CheckConv(cc, fp16, seed += 10);
}

// ---- Gemm / MatMul -------------------------------------------------------------------------------------

struct GemmCase {
  int64_t M, N, K;
  bool ta, tb;
  GemmCudaParams::Bias bias;
  float alpha, beta;
  ActKind act;
};

void CheckGemm(const GemmCase& gc, bool fp16, uint32_t seed) {
  auto a = RandomVector(gc.M * gc.K, seed), b = RandomVector(gc.K * gc.N, seed + 1, -0.5f, 0.5f);
  if (fp16) a = RoundToHalf(a), b = RoundToHalf(b);
  Shape cs;
  int64_t cn = 0;
  switch (gc.bias) {
    case GemmCudaParams::Bias::kRow: cs = {gc.M, 1}, cn = gc.M; break;
    case GemmCudaParams::Bias::kCol: cs = {gc.N}, cn = gc.N; break;
    case GemmCudaParams::Bias::kFull: cs = {gc.M, gc.N}, cn = gc.M * gc.N; break;
    default: break;
  }
  auto c = RandomVector(cn, seed + 2);
  auto ref = RunCpu({{"a", gc.ta ? Shape{gc.K, gc.M} : Shape{gc.M, gc.K}, a}, {"b", gc.tb ? Shape{gc.N, gc.K} : Shape{gc.K, gc.N}, b}},
                    [&](OnnxWriter& m) {
                      std::vector<std::string> ins = {"a", "b"};
                      if (cn) m.Initializer("c", cs, c), ins.push_back("c");
                      m.Node("Gemm", ins, {gc.act == ActKind::Relu ? "g" : "y"},
                             {Attr::I("transA", gc.ta), Attr::I("transB", gc.tb), Attr::F("alpha", gc.alpha),
                              Attr::F("beta", gc.beta)});
                      if (gc.act == ActKind::Relu) m.Node("Relu", {"g"}, {"y"});
                    });
  GemmCudaParams p;
  p.M = gc.M, p.N = gc.N, p.K = gc.K, p.trans_a = gc.ta, p.trans_b = gc.tb, p.alpha = gc.alpha, p.beta = gc.beta;
  p.bias = gc.bias;
  p.act.kind = gc.act;
  Dev<float> c_d(c);
  char what[160];
  std::snprintf(what, sizeof what, "gemm M=%lld N=%lld K=%lld ta=%d tb=%d bias=%d alpha=%g beta=%g %s", (long long)gc.M,
                (long long)gc.N, (long long)gc.K, gc.ta, gc.tb, static_cast<int>(gc.bias), gc.alpha, gc.beta, ActName(gc.act));
  const double k = std::sqrt(static_cast<double>(gc.K));
  if (!fp16) {
    Dev<float> a_d(a), b_d(b), y_d(ref.size());
    STATUS_OK(GemmCuda(p, GemmCudaPtrs{a_d.get(), b_d.get(), cn ? c_d.get() : nullptr, y_d.get()}, nullptr, 0, nullptr));
    Sync();
    const double r = Ratio(y_d.Download(), ref, 2e-5 * k, 2e-5 * k);
    CHECK(r <= 1, "%s fp32: ratio %g", what, r);
    return;
  }
  Dev<uint16_t> a_d(ToHalf(a)), b_d(ToHalf(b)), y_tc(ref.size()), y_simt(ref.size());
  p.dtype = CudaDType::kF16;
  p.math = CudaMath::kTensorCore;
  STATUS_OK(GemmCuda(p, GemmCudaPtrs{a_d.get(), b_d.get(), cn ? c_d.get() : nullptr, y_tc.get()}, nullptr, 0, nullptr));
  p.math = CudaMath::kSimt;
  STATUS_OK(GemmCuda(p, GemmCudaPtrs{a_d.get(), b_d.get(), cn ? c_d.get() : nullptr, y_simt.get()}, nullptr, 0, nullptr));
  Sync();
  const auto tc = FromHalf(y_tc.Download()), simt = FromHalf(y_simt.Download());
  const double atol = 1e-3 + 2e-5 * k;
  const double r_tc = Ratio(tc, ref, 2e-3, atol), r_simt = Ratio(simt, ref, 2e-3, atol), r_both = Ratio(tc, simt, 2e-3, atol);
  CHECK(r_tc <= 1 && r_simt <= 1 && r_both <= 1, "%s fp16: ratio tc %g, simt %g, tc vs simt %g", what, r_tc, r_simt, r_both);
}

void TestGemm(bool fp16) {
  using B = GemmCudaParams::Bias;
  const GemmCase cases[] = {
      {1, 512, 1024, false, true, B::kCol, 1.f, 1.f, ActKind::None},  // FC at batch 1 (swapped tiles)
      {8, 512, 2048, false, true, B::kCol, 1.f, 1.f, ActKind::Relu},
      {64, 512, 300, false, false, B::kCol, 1.f, 1.f, ActKind::None},
      {130, 70, 33, true, false, B::kFull, 0.5f, 2.f, ActKind::None},
      {37, 129, 64, true, true, B::kRow, 1.f, 0.25f, ActKind::Relu},
      {5, 100, 17, false, false, B::kNone, 2.f, 1.f, ActKind::None},
      {3, 256, 40, false, true, B::kFull, 1.f, 0.5f, ActKind::None},  // swapped, full C
      {200, 300, 257, false, false, B::kNone, 1.f, 1.f, ActKind::None},
  };
  uint32_t seed = fp16 ? 7000 : 3000;
  for (const auto& gc : cases) CheckGemm(gc, fp16, seed += 10);
}

// MatMul with batch axes on A only ([B, M, K] · [K, N]) and on both.
void TestMatMulBatched() {
  const int64_t Bt = 3, M = 20, K = 48, N = 36;
  auto a = RandomVector(Bt * M * K, 91), b = RandomVector(Bt * K * N, 92);
  for (bool b_batched : {false, true}) {
    std::vector<float> bb(b.begin(), b.begin() + (b_batched ? Bt : 1) * K * N);
    const Shape bs = b_batched ? Shape{Bt, K, N} : Shape{K, N};
    auto ref = RunCpu({{"a", {Bt, M, K}, a}, {"b", bs, bb}}, [](OnnxWriter& m) { m.Node("MatMul", {"a", "b"}, {"y"}); });
    GemmCudaParams p;
    p.M = M, p.N = N, p.K = K, p.batch = Bt;
    p.batch_stride_a = M * K, p.batch_stride_b = b_batched ? K * N : 0, p.batch_stride_y = M * N;
    Dev<float> a_d(a), b_d(bb), y_d(ref.size());
    STATUS_OK(GemmCuda(p, GemmCudaPtrs{a_d.get(), b_d.get(), nullptr, y_d.get()}, nullptr, 0, nullptr));
    Sync();
    const double r = Ratio(y_d.Download(), ref, 2e-5 * std::sqrt(K), 2e-5 * std::sqrt(K));
    CHECK(r <= 1, "batched matmul (b batched %d): ratio %g", b_batched, r);
  }
}

// ---- Pool, Resize, Concat, element-wise, Softmax, L2 norm -----------------------------------------------

void TestPool() {
  struct Case { bool max; int64_t N, C, H, W, k, s, pad; bool ceil, include_pad; };
  const Case cases[] = {
      {true, 2, 8, 20, 20, 3, 2, 1, false, false}, {true, 1, 4, 17, 13, 2, 2, 0, true, false},
      {false, 2, 8, 20, 20, 3, 2, 1, false, false}, {false, 1, 4, 17, 13, 3, 2, 1, true, true},
      {false, 3, 5, 9, 9, 2, 1, 0, false, false},  {true, 1, 3, 10, 10, 5, 3, 2, true, false},
  };
  uint32_t seed = 400;
  for (const auto& c : cases) {
    auto x = RandomVector(c.N * c.C * c.H * c.W, ++seed);
    Shape ys;
    auto ref = RunCpu({{"x", {c.N, c.C, c.H, c.W}, x}}, [&](OnnxWriter& m) {
      std::vector<Attr> attrs = {Attr::Is("kernel_shape", {c.k, c.k}), Attr::Is("strides", {c.s, c.s}),
                                 Attr::Is("pads", {c.pad, c.pad, c.pad, c.pad}), Attr::I("ceil_mode", c.ceil)};
      if (!c.max) attrs.push_back(Attr::I("count_include_pad", c.include_pad));
      m.Node(c.max ? "MaxPool" : "AveragePool", {"x"}, {"y"}, attrs);
    }, &ys);
    PoolCudaParams p;
    p.N = c.N, p.C = c.C, p.H = c.H, p.W = c.W, p.is_max = c.max;
    p.kernel_h = p.kernel_w = c.k, p.stride_h = p.stride_w = c.s;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = c.pad;
    p.OH = ys[2], p.OW = ys[3], p.count_include_pad = c.include_pad;
    Dev<float> x_d(x), y_d(ref.size());
    STATUS_OK(PoolCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    CHECK(Equal(y_d.Download(), ref), "%s k=%lld s=%lld pad=%lld ceil=%d incl=%d: not equal to the CPU op",
          c.max ? "MaxPool" : "AveragePool", (long long)c.k, (long long)c.s, (long long)c.pad, c.ceil, c.include_pad);
  }
  for (bool max : {false, true}) {
    const int64_t N = 3, C = 20, H = 7, W = 9;
    auto x = RandomVector(N * C * H * W, 450 + max);
    auto ref = RunCpu({{"x", {N, C, H, W}, x}}, [&](OnnxWriter& m) { m.Node(max ? "GlobalMaxPool" : "GlobalAveragePool", {"x"}, {"y"}); });
    PoolCudaParams p;
    p.N = N, p.C = C, p.H = H, p.W = W, p.global = true, p.is_max = max;
    Dev<float> x_d(x), y_d(ref.size());
    STATUS_OK(PoolCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    const double r = Ratio(y_d.Download(), ref, 1e-5, 1e-6);
    CHECK(r <= 1, "%s: ratio %g", max ? "GlobalMaxPool" : "GlobalAveragePool", r);
  }
}

void TestResize() {
  struct Case { const char* mode; const char* coord; const char* nearest; ResizeCoordCuda c; ResizeRoundingCuda r;
                int64_t H, W, OH, OW; bool by_sizes; float sh, sw; };
  using C = ResizeCoordCuda;
  using R = ResizeRoundingCuda;
  const Case cases[] = {
      {"nearest", "asymmetric", "floor", C::kAsymmetric, R::kFloor, 10, 10, 20, 20, false, 2.f, 2.f},
      {"nearest", "half_pixel", "round_prefer_floor", C::kHalfPixel, R::kRoundPreferFloor, 20, 20, 40, 40, false, 2.f, 2.f},
      {"nearest", "asymmetric", "round_prefer_ceil", C::kAsymmetric, R::kRoundPreferCeil, 7, 6, 11, 4, true, 0, 0},
      {"linear", "half_pixel", "round_prefer_floor", C::kHalfPixel, R::kRoundPreferFloor, 10, 12, 20, 24, false, 2.f, 2.f},
      {"linear", "align_corners", "round_prefer_floor", C::kAlignCorners, R::kRoundPreferFloor, 9, 7, 17, 13, true, 0, 0},
      {"linear", "asymmetric", "round_prefer_floor", C::kAsymmetric, R::kRoundPreferFloor, 8, 8, 12, 5, true, 0, 0},
      {"linear", "pytorch_half_pixel", "round_prefer_floor", C::kPytorchHalfPixel, R::kRoundPreferFloor, 6, 6, 1, 9, true, 0, 0},
      {"linear", "half_pixel_symmetric", "round_prefer_floor", C::kHalfPixelSymmetric, R::kRoundPreferFloor, 5, 7, 11, 3, true, 0, 0},
  };
  uint32_t seed = 600;
  for (const auto& c : cases) {
    const int64_t N = 2, Ch = 3;
    auto x = RandomVector(N * Ch * c.H * c.W, ++seed);
    auto ref = RunCpu({{"x", {N, Ch, c.H, c.W}, x}}, [&](OnnxWriter& m) {
      m.Initializer("roi", {0}, {});
      if (c.by_sizes) {
        m.Initializer("scales", {0}, {});
        m.IntInitializer("sizes", {4}, {N, Ch, c.OH, c.OW});
        m.Node("Resize", {"x", "roi", "scales", "sizes"}, {"y"},
               {Attr::S("mode", c.mode), Attr::S("coordinate_transformation_mode", c.coord), Attr::S("nearest_mode", c.nearest)});
      } else {
        m.Initializer("scales", {4}, {1.f, 1.f, c.sh, c.sw});
        m.Node("Resize", {"x", "roi", "scales"}, {"y"},
               {Attr::S("mode", c.mode), Attr::S("coordinate_transformation_mode", c.coord), Attr::S("nearest_mode", c.nearest)});
      }
    });
    ResizeCudaParams p;
    p.NC = N * Ch, p.H = c.H, p.W = c.W, p.OH = c.OH, p.OW = c.OW;
    p.scale_h = c.by_sizes ? static_cast<float>(c.OH) / static_cast<float>(c.H) : c.sh;
    p.scale_w = c.by_sizes ? static_cast<float>(c.OW) / static_cast<float>(c.W) : c.sw;
    p.linear = std::strcmp(c.mode, "linear") == 0;
    p.coord = c.c, p.rounding = c.r;
    Dev<float> x_d(x), y_d(N * Ch * c.OH * c.OW);
    STATUS_OK(ResizeCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    CHECK(Equal(y_d.Download(), ref), "Resize %s %s %s %lldx%lld → %lldx%lld: not equal to the CPU op", c.mode, c.coord,
          c.nearest, (long long)c.H, (long long)c.W, (long long)c.OH, (long long)c.OW);
  }
}

void TestConcat() {
  const int64_t N = 2, H = 5, W = 7;
  const int64_t chans[] = {3, 8, 1};
  std::vector<HostInput> ins;
  for (int i = 0; i < 3; ++i) ins.push_back({"x" + std::to_string(i), {N, chans[i], H, W}, RandomVector(N * chans[i] * H * W, 700 + i)});
  auto ref = RunCpu(ins, [](OnnxWriter& m) { m.Node("Concat", {"x0", "x1", "x2"}, {"y"}, {Attr::I("axis", 1)}); });
  ConcatCudaParams p;
  p.outer = N, p.inner = H * W, p.count = 3;
  ConcatCudaPtrs ptrs;
  std::vector<std::unique_ptr<Dev<float>>> bufs;
  for (int i = 0; i < 3; ++i) {
    p.axis_sizes[i] = chans[i];
    bufs.push_back(std::make_unique<Dev<float>>(ins[i].data));
    ptrs.inputs[i] = bufs.back()->get();
  }
  Dev<float> y_d(ref.size());
  ptrs.y = y_d.get();
  STATUS_OK(ConcatCuda(p, ptrs, nullptr, 0, nullptr));
  Sync();
  CHECK(Equal(y_d.Download(), ref), "Concat axis 1: not equal to the CPU op");
}

void TestBinary() {
  struct Case { const char* op; BinaryCudaKind kind; Shape a, b; };
  using K = BinaryCudaKind;
  const Case cases[] = {
      {"Add", K::kAdd, {2, 8, 5, 5}, {2, 8, 5, 5}}, {"Add", K::kAdd, {2, 8, 5, 5}, {8, 1, 1}},
      {"Sub", K::kSub, {1, 8, 5, 5}, {2, 1, 5, 1}}, {"Mul", K::kMul, {3, 1, 4}, {2, 1}},
      {"Div", K::kDiv, {4, 6}, {6}},                {"Mul", K::kMul, {}, {3, 2}},
      {"Max", K::kMax, {2, 3, 4}, {3, 1}},          {"PRelu", K::kPRelu, {2, 6, 3, 3}, {6, 1, 1}},
  };
  uint32_t seed = 800;
  for (const auto& c : cases) {
    auto a = RandomVector(NumElements(c.a), ++seed), b = RandomVector(NumElements(c.b), ++seed, 0.5f, 2.f);
    auto ref = RunCpu({{"a", c.a, a}, {"b", c.b, b}}, [&](OnnxWriter& m) { m.Node(c.op, {"a", "b"}, {"y"}); });
    BinaryCudaParams p;
    CHECK(MakeBinaryCudaParams(c.kind, c.a, c.b, &p), "%s: shapes rejected", c.op);
    Dev<float> a_d(a), b_d(b), y_d(ref.size());
    STATUS_OK(BinaryCuda(p, a_d.get(), b_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    CHECK(Equal(y_d.Download(), ref), "%s %s with %s: not equal to the CPU op", c.op, ShapeToString(c.a).c_str(),
          ShapeToString(c.b).c_str());
  }
  BinaryCudaParams bad;
  CHECK(!MakeBinaryCudaParams(K::kAdd, {2, 3}, {4, 3, 2}, &bad), "incompatible shapes accepted");
}

void TestUnary() {
  const int64_t n = 5000;
  auto x = RandomVector(n, 900, -8.f, 8.f);
  struct Case { const char* op; UnaryCudaKind kind; bool exact; };
  const Case cases[] = {{"Relu", UnaryCudaKind::kRelu, true}, {"Sigmoid", UnaryCudaKind::kSigmoid, false},
                        {"LeakyRelu", UnaryCudaKind::kLeakyRelu, true}, {"Clip", UnaryCudaKind::kClip, true}};
  for (const auto& c : cases) {
    auto ref = RunCpu({{"x", {n}, x}}, [&](OnnxWriter& m) {
      if (std::strcmp(c.op, "Clip") == 0) {
        m.Initializer("lo", {}, {-1.f});
        m.Initializer("hi", {}, {2.5f});
        m.Node("Clip", {"x", "lo", "hi"}, {"y"});
      } else {
        m.Node(c.op, {"x"}, {"y"}, std::strcmp(c.op, "LeakyRelu") == 0 ? std::vector<Attr>{Attr::F("alpha", 0.2f)} : std::vector<Attr>{});
      }
    });
    UnaryCudaParams p;
    p.kind = c.kind, p.n = n, p.alpha = 0.2f, p.lo = -1.f, p.hi = 2.5f;
    Dev<float> x_d(x), y_d(n);
    STATUS_OK(UnaryCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    const auto got = y_d.Download();
    if (c.exact) CHECK(Equal(got, ref), "%s: not equal to the CPU op", c.op);
    else CHECK(Ratio(got, ref, 1e-6, 1e-7) <= 1, "%s: ratio %g", c.op, Ratio(got, ref, 1e-6, 1e-7));
  }
}

void TestCast() {
  auto x = RandomVector(1000, 950, -70000.f, 70000.f);
  x[0] = 0.f, x[1] = -0.f, x[2] = 1e-7f, x[3] = 65504.f, x[4] = 65520.f, x[5] = 6.1e-5f, x[6] = 3e-6f;
  Dev<float> x_d(x), back(x.size());
  Dev<uint16_t> h(x.size());
  STATUS_OK(CastCuda(CudaDType::kF32, CudaDType::kF16, x.size(), x_d.get(), h.get(), nullptr));
  STATUS_OK(CastCuda(CudaDType::kF16, CudaDType::kF32, x.size(), h.get(), back.get(), nullptr));
  Sync();
  CHECK(h.Download() == ToHalf(x), "fp32 → fp16 differs from the host rounding");
  CHECK(Equal(back.Download(), RoundToHalf(x)), "fp16 → fp32 differs from the host conversion");
}

void TestSoftmaxL2() {
  for (int64_t n : {2, 10, 513}) {
    const int64_t rows = 37;
    auto x = RandomVector(rows * n, 1000 + n, -5.f, 5.f);
    for (bool log : {false, true}) {
      auto ref = RunCpu({{"x", {rows, n}, x}}, [&](OnnxWriter& m) { m.Node(log ? "LogSoftmax" : "Softmax", {"x"}, {"y"}, {Attr::I("axis", -1)}); });
      SoftmaxCudaParams p;
      p.rows = rows, p.n = n, p.log = log;
      Dev<float> x_d(x), y_d(ref.size());
      STATUS_OK(SoftmaxCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
      Sync();
      const double r = Ratio(y_d.Download(), ref, 1e-5, 1e-6);
      CHECK(r <= 1, "%s n=%lld: ratio %g", log ? "LogSoftmax" : "Softmax", (long long)n, r);
    }
  }
  {
    const int64_t rows = 33, n = 512;
    auto x = RandomVector(rows * n, 1100);
    auto ref = RunCpu({{"x", {rows, n}, x}}, [&](OnnxWriter& m) {
      m.IntInitializer("axes", {1}, {1});
      m.Node("ReduceL2", {"x", "axes"}, {"norm"}, {Attr::I("keepdims", 1)});
      m.Node("Div", {"x", "norm"}, {"y"});
    }, nullptr, 18);
    L2NormCudaParams p;
    p.rows = rows, p.n = n;
    Dev<float> x_d(x), y_d(ref.size());
    STATUS_OK(L2NormCuda(p, x_d.get(), y_d.get(), nullptr, 0, nullptr));
    Sync();
    const double r = Ratio(y_d.Download(), ref, 1e-6, 1e-7);
    CHECK(r <= 1, "L2 norm (ReduceL2 + Div): ratio %g", r);
  }
}

void TestStatuses() {
  ConvCudaParams p;
  CHECK(ConvCuda(p, ConvCudaPtrs{}, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument, "empty conv accepted");
  p.N = 1, p.C = 6, p.H = p.W = 4, p.M = 4, p.OH = p.OW = 4, p.group = 4;
  CHECK(ConvCuda(p, ConvCudaPtrs{}, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument, "group not dividing C accepted");
  GemmCudaParams g;
  g.M = g.N = g.K = 4;
  g.act.kind = ActKind::PRelu;
  CHECK(GemmCuda(g, GemmCudaPtrs{}, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument, "gemm with PRelu accepted");
  ConcatCudaParams c;
  CHECK(ConcatCuda(c, ConcatCudaPtrs{}, nullptr, 0, nullptr).code == CudaStatus::kInvalidArgument, "concat of nothing accepted");
}

// ---- Timings ----------------------------------------------------------------------------------------

// A conv layer at one batch, fp32 (SIMT) and fp16 (tensor cores where the path has them).
void BenchConv(Timer& timer, const char* name, int64_t N, int64_t C, int64_t H, int64_t M, int64_t k, int64_t s,
               int64_t group) {
  ConvCudaParams p;
  p.N = N, p.C = C, p.H = p.W = H, p.M = M, p.KH = p.KW = k, p.stride_h = p.stride_w = s, p.pad_top = p.pad_left = k / 2;
  p.group = group;
  p.OH = p.OW = (H + 2 * (k / 2) - k) / s + 1;
  p.act.kind = ActKind::Relu;
  const int64_t K = C / group * k * k;
  const size_t xn = N * C * H * H, yn = N * M * p.OH * p.OW;
  Dev<float> x(xn), y(yn), w(RandomVector(M * K, 5)), bias(RandomVector(M, 6));
  Dev<uint16_t> xh(xn), yh(yn), wh(ToHalf(RandomVector(M * K, 5)));
  CUDA_OK(cudaMemset(x.get(), 0, xn * 4));
  CUDA_OK(cudaMemset(xh.get(), 0, xn * 2));
  const double flops = 2.0 * N * M * p.OH * p.OW * K;
  char size[96], rate[64], kernel[64];
  for (int variant = 0; variant < 3; ++variant) {
    ConvCudaParams q = p;
    if (variant > 0) q.dtype = CudaDType::kF16;
    if (variant == 2) q.math = CudaMath::kSimt;
    if (variant == 2) {  // the SIMT fallback on fp16 data, only where the fp16 row ran on tensor cores
      ConvCudaParams t = q;
      t.math = CudaMath::kAuto;
      if (!ConvCudaUsesTensorCores(t)) continue;
    }
    const bool half = q.dtype == CudaDType::kF16;
    const ConvCudaPtrs ptrs{half ? static_cast<const void*>(xh.get()) : x.get(), half ? static_cast<const void*>(wh.get()) : w.get(),
                            bias.get(), nullptr, half ? static_cast<void*>(yh.get()) : y.get()};
    const double ms = timer.P50([&] { STATUS_OK(ConvCuda(q, ptrs, nullptr, 0, nullptr)); });
    std::snprintf(kernel, sizeof kernel, "%s %s%s", ConvCudaPathName(ConvCudaPathFor(q)), half ? "fp16" : "fp32",
                  ConvCudaUsesTensorCores(q) ? " tc" : (half ? " simt" : ""));
    std::snprintf(size, sizeof size, "%s N=%lld %lld→%lld %lldx%lld k%lld s%lld g%lld", name, (long long)N, (long long)C,
                  (long long)M, (long long)H, (long long)H, (long long)k, (long long)s, (long long)group);
    const double bytes = (xn + yn) * (half ? 2.0 : 4.0);
    std::snprintf(rate, sizeof rate, "%.2f TFLOP/s %.0f GB/s", flops / ms * 1e-9, bytes / ms * 1e-6);
    Row(kernel, size, ms, rate);
  }
}

void Bench() {
  Timer timer;
  TimingHeader("p50 of 20 runs, cudaEvent, after one warm-up");
  // RetinaFace mobilenet0.25 at 640×640: backbone layers (stem, depthwise, pointwise) and an SSH 3×3.
  for (int64_t N : {1, 8, 64}) {
    BenchConv(timer, "retina stem", N, 3, 640, 8, 3, 2, 1);
    BenchConv(timer, "retina dw", N, 8, 320, 8, 3, 1, 8);
    BenchConv(timer, "retina pw", N, 8, 320, 16, 1, 1, 1);
    BenchConv(timer, "retina dw s2", N, 32, 160, 32, 3, 2, 32);
    BenchConv(timer, "retina pw", N, 32, 80, 64, 1, 1, 1);
    BenchConv(timer, "retina pw", N, 128, 20, 256, 1, 1, 1);
    BenchConv(timer, "retina ssh 3x3", N, 64, 80, 32, 3, 1, 1);
  }
  // MobileNetV1 at 160×160: the 10×10 512→512 pointwise layer.
  for (int64_t N : {32, 256}) BenchConv(timer, "mobilenet pw", N, 512, 10, 512, 1, 1, 1);
  char size[96], rate[64];
  // GEMM 4096³: fp16 tensor cores (the TFLOP/s figure), fp16 SIMT and fp32 SIMT.
  {
    const int64_t n = 4096;
    Dev<uint16_t> ah(ToHalf(RandomVector(n * n, 1))), bh(ToHalf(RandomVector(n * n, 2))), yh(n * n);
    Dev<float> a(n * n), b(n * n), y(n * n);
    CUDA_OK(cudaMemset(a.get(), 0, n * n * 4));
    CUDA_OK(cudaMemset(b.get(), 0, n * n * 4));
    for (int v = 0; v < 3; ++v) {
      GemmCudaParams p;
      p.M = p.N = p.K = n;
      p.dtype = v < 2 ? CudaDType::kF16 : CudaDType::kF32;
      p.math = v == 1 ? CudaMath::kSimt : CudaMath::kAuto;
      const GemmCudaPtrs ptrs = v < 2 ? GemmCudaPtrs{ah.get(), bh.get(), nullptr, yh.get()} : GemmCudaPtrs{a.get(), b.get(), nullptr, y.get()};
      const double ms = timer.P50([&] { STATUS_OK(GemmCuda(p, ptrs, nullptr, 0, nullptr)); });
      std::snprintf(rate, sizeof rate, "%.1f TFLOP/s", 2.0 * n * n * n / ms * 1e-9);
      Row(v == 0 ? "gemm fp16 tc" : v == 1 ? "gemm fp16 simt" : "gemm fp32 simt", "4096×4096×4096", ms, rate);
    }
  }
  // FC layer: 512 ← 25088 (7×7×512 features) at batch 1 / 64.
  for (int64_t M : {1, 64}) {
    const int64_t N = 512, K = 25088;
    Dev<float> a(RandomVector(M * K, 3)), b(RandomVector(N * K, 4)), c(RandomVector(N, 5)), y(M * N);
    GemmCudaParams p;
    p.M = M, p.N = N, p.K = K, p.trans_b = true, p.bias = GemmCudaParams::Bias::kCol;
    const double ms = timer.P50([&] { STATUS_OK(GemmCuda(p, GemmCudaPtrs{a.get(), b.get(), c.get(), y.get()}, nullptr, 0, nullptr)); });
    std::snprintf(size, sizeof size, "FC M=%lld N=512 K=25088 (transB, bias)", (long long)M);
    std::snprintf(rate, sizeof rate, "%.0f GB/s weights", N * K * 4.0 / ms * 1e-6);
    Row("gemm fp32 simt", size, ms, rate);
  }
  // Pool / resize / softmax / L2 at detector and embedder sizes.
  {
    const int64_t N = 8, C = 64, H = 80;
    Dev<float> x(RandomVector(N * C * H * H, 7)), y(N * C * H * H * 4);
    PoolCudaParams p;
    p.N = N, p.C = C, p.H = p.W = H, p.kernel_h = p.kernel_w = 3, p.stride_h = p.stride_w = 2, p.pad_top = p.pad_left = 1;
    p.pad_bottom = p.pad_right = 1, p.OH = p.OW = 40;
    double ms = timer.P50([&] { STATUS_OK(PoolCuda(p, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("maxpool 3x3 s2", "N=8 C=64 80x80", ms, "");
    p.global = true, p.is_max = false;
    ms = timer.P50([&] { STATUS_OK(PoolCuda(p, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("global avgpool", "N=8 C=64 80x80", ms, "");
    ResizeCudaParams r;
    r.NC = N * C, r.H = r.W = 40, r.OH = r.OW = 80, r.scale_h = r.scale_w = 2.f, r.coord = ResizeCoordCuda::kAsymmetric;
    r.rounding = ResizeRoundingCuda::kFloor;
    ms = timer.P50([&] { STATUS_OK(ResizeCuda(r, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("resize nearest ×2", "N=8 C=64 40x40 → 80x80", ms, "");
    r.linear = true, r.coord = ResizeCoordCuda::kHalfPixel;
    ms = timer.P50([&] { STATUS_OK(ResizeCuda(r, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("resize bilinear ×2", "N=8 C=64 40x40 → 80x80", ms, "");
    SoftmaxCudaParams s;
    s.rows = 8 * 16800, s.n = 2;
    ms = timer.P50([&] { STATUS_OK(SoftmaxCuda(s, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("softmax n=2", "8 × 16800 anchors", ms, "");
    L2NormCudaParams l;
    l.rows = 1024, l.n = 512;
    ms = timer.P50([&] { STATUS_OK(L2NormCuda(l, x.get(), y.get(), nullptr, 0, nullptr)); });
    Row("l2 norm", "1024 × 512", ms, "");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (!GpuUsable("test_cuda_ops")) return 77;
  const bool bench = BenchRequested(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  TestConv(false);
  TestConv(true);
  TestGemm(false);
  TestGemm(true);
  TestMatMulBatched();
  TestPool();
  TestResize();
  TestConcat();
  TestBinary();
  TestUnary();
  TestCast();
  TestSoftmaxL2();
  TestStatuses();
  std::printf("correctness: %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (bench && Failures() == 0) Bench();
  return Finish("test_cuda_ops");
}
