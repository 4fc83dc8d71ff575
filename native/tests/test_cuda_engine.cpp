// CudaEngine end to end: RetinaFace-mnet0.25 (480×640) and FaceNet-MobileNetV1 (160×160) with random
// weights (face_networks.h) on the CPU Engine and on the CudaEngine at batch 1 and 8, fp32 and fp16;
// graph replay; RunDevice; plan switching; E_MODEL for a node without a CUDA kernel. Then timings of
// both networks at 640×640 / 160×160 over batches 1…256 (rows of the GPU timing table).
//
// Tolerances, per output tensor, with scale = max |cpu| (≥ 1e-3):
//   fp32   max |gpu − cpu| ≤ 1e-3 · scale (another summation order in every layer; ~30 layers deep)
//   fp16   max |gpu − cpu| ≤ 5e-2 · scale (weights and activations rounded to fp16, fp32 accumulation);
//          embeddings also cosine(gpu, cpu) ≥ 0.999 per row (fp32: ≥ 0.99999)
//   replay, RunDevice, a plan used again after another shape: bitwise equal to the first run.
// The measured errors are printed. The plan checks (binding, E_MODEL / E_INPUT) run on the host first,
// without a device; then the test exits 77 (ctest: skipped) where no CUDA device is usable.
// `--no-bench` (or FACESIGHT_GPU_BENCH=0) skips the timings.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "common/error.h"
#include "engine/cuda_engine.h"
#include "engine/engine.h"
#include "cuda_test_util.h"
#include "face_networks.h"
#include "onnx_writer.h"
#include "test_util.h"

using namespace facesight;
using namespace facesight_test;

namespace {

struct TestNetwork {
  const char* name;
  std::vector<uint8_t> bytes;
  int64_t C, H, W;      // correctness input size per image
  int64_t bench_h, bench_w;
  float lo, hi;         // input value range
  bool embedding;       // rows are L2-normalised embeddings
};

std::vector<TestNetwork> Networks() {
  return {{"retinaface", RetinaFaceMnet025Onnx(11), 3, 480, 640, 640, 640, -1.f, 1.f, false},
          {"facenet", FaceNetMobileNetV1Onnx(12), 3, 160, 160, 160, 160, 0.f, 1.f, true}};
}

const char* PrecisionName(CudaPrecision p) { return p == CudaPrecision::kFp16 ? "fp16" : "fp32"; }

std::unique_ptr<CudaEngine> LoadCuda(const std::vector<uint8_t>& bytes, CudaPrecision precision) {
  CudaEngineOptions o;
  o.precision = precision;
  return CudaEngine::Load(bytes.data(), bytes.size(), o);
}

template <typename F>
void ExpectError(ErrorCode code, const std::vector<std::string>& parts, const char* what, F f) {
  try {
    f();
    CHECK(false, "%s: no error", what);
  } catch (const FaceException& e) {
    bool all = e.code() == code;
    for (const std::string& p : parts) all = all && std::string(e.what()).find(p) != std::string::npos;
    CHECK(all, "%s: code %s, message: %s", what, ErrorCodeName(e.code()), e.what());
  }
}

// ---- Host only: planning -----------------------------------------------------------------------------

void TestPlansOnHost() {
  for (const TestNetwork& net : Networks()) {
    for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) {
      auto engine = LoadCuda(net.bytes, precision);
      std::vector<std::string> steps;
      try {
        steps = engine->DescribePlan({{8, net.C, net.H, net.W}});
      } catch (const FaceException& e) {
        CHECK(false, "%s %s: planning failed: %s", net.name, PrecisionName(precision), e.what());
        continue;
      }
      int convs = 0, fp16_convs = 0, casts = 0, l2 = 0;
      for (const std::string& s : steps) {
        convs += s.rfind("Conv ", 0) == 0;
        fp16_convs += s.rfind("Conv ", 0) == 0 && s.find(" fp16 ") != std::string::npos;
        casts += s.rfind("Cast ", 0) == 0;
        l2 += s.find("as L2 normalisation") != std::string::npos;
        CHECK(s.rfind("ReduceL2", 0) != 0 || s.find("L2 normalisation") != std::string::npos, "%s: unfused %s", net.name, s.c_str());
      }
      std::printf("%s %s plan: %zu steps, %d convs (%d fp16), %d casts, %d L2 normalisations\n", net.name,
                  PrecisionName(precision), steps.size(), convs, fp16_convs, casts, l2);
      if (std::getenv("FACESIGHT_TEST_VERBOSE"))
        for (const std::string& s : steps) std::printf("  %s\n", s.c_str());
      CHECK(convs == (net.embedding ? 27 : 56), "%s: %d conv steps", net.name, convs);
      CHECK(fp16_convs == (precision == CudaPrecision::kFp16 ? convs : 0), "%s %s: %d fp16 convs", net.name,
            PrecisionName(precision), fp16_convs);
      CHECK(precision == CudaPrecision::kFp16 || casts == 0, "%s fp32: %d casts", net.name, casts);
      CHECK(l2 == (net.embedding ? 1 : 0), "%s: %d L2 normalisations", net.name, l2);
    }
    auto engine = LoadCuda(net.bytes, CudaPrecision::kFp32);
    ExpectError(ErrorCode::Input, {"Expected size 3 at axis 1"}, "wrong channel count",
                [&] { engine->DescribePlan({{1, 4, net.H, net.W}}); });
  }
  // A node the CPU engine runs but the CUDA engine has no kernel for: E_MODEL naming the op and node.
  {
    OnnxWriter m;
    m.Input("x", {1, 4, 8, 8});
    m.IntInitializer("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
    m.Node("Pad", {"x", "pads"}, {"p"});
    m.Node("Relu", {"p"}, {"y"});
    m.Output("y");
    const auto bytes = m.Bytes();
    auto engine = LoadCuda(bytes, CudaPrecision::kFp32);
    ExpectError(ErrorCode::Model, {"Pad", "p_node", "no CUDA kernel"}, "Pad", [&] { engine->DescribePlan({{1, 4, 8, 8}}); });
  }
  // An L2 normalisation over a non-last axis (ReduceL2 alone has no kernel).
  {
    OnnxWriter m;
    m.Input("x", {2, 8, 3});
    m.Node("ReduceL2", {"x"}, {"n"}, {Attr::Is("axes", {1}), Attr::I("keepdims", 1)});
    m.Node("Div", {"x", "n"}, {"y"});
    m.Output("y");
    const auto bytes = m.Bytes();
    auto engine = LoadCuda(bytes, CudaPrecision::kFp32);
    ExpectError(ErrorCode::Model, {"ReduceL2", "n_node", "not the last"}, "ReduceL2 axis 1 of 3",
                [&] { engine->DescribePlan({{2, 8, 3}}); });
  }
  // Unsupported everywhere: rejected at load, as the CPU engine does.
  {
    OnnxWriter m;
    m.Input("x", {1, 4});
    m.Node("Einsum", {"x"}, {"y"}, {Attr::S("equation", "ij->ji")});
    m.Output("y");
    const auto bytes = m.Bytes();
    ExpectError(ErrorCode::Model, {"Einsum", "y_node"}, "Einsum", [&] { LoadCuda(bytes, CudaPrecision::kFp32); });
  }
}

// ---- On the device -----------------------------------------------------------------------------------

struct Errors {
  double max_abs = 0, scale = 0, min_cosine = 1;
};

Errors Compare(const OutputTensor& gpu, const OutputTensor& cpu, bool rows_are_embeddings) {
  Errors e;
  const int64_t n = cpu.size();
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(static_cast<double>(gpu.data[i]) - cpu.data[i]);
    e.max_abs = std::isfinite(gpu.data[i]) ? std::max(e.max_abs, d) : INFINITY;
    e.scale = std::max(e.scale, std::fabs(static_cast<double>(cpu.data[i])));
  }
  e.scale = std::max(e.scale, 1e-3);
  if (rows_are_embeddings) {
    const int64_t d = cpu.shape.back(), rows = n / d;
    for (int64_t r = 0; r < rows; ++r) {
      double ab = 0, aa = 0, bb = 0;
      for (int64_t j = 0; j < d; ++j) {
        const double a = gpu.data[r * d + j], b = cpu.data[r * d + j];
        ab += a * b, aa += a * a, bb += b * b;
      }
      e.min_cosine = std::min(e.min_cosine, ab / std::sqrt(aa * bb + 1e-30));
    }
  }
  return e;
}

bool BitwiseEqual(const std::vector<OutputTensor>& a, const std::vector<OutputTensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (a[k].shape != b[k].shape || std::memcmp(a[k].data.get(), b[k].data.get(), a[k].size() * sizeof(float)) != 0) return false;
  return true;
}

void TestNetworksOnDevice() {
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (const TestNetwork& net : Networks()) {
    auto cpu = Engine::Load(net.bytes.data(), net.bytes.size(), EngineOptions{threads});
    for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) {
      const bool half = precision == CudaPrecision::kFp16;
      auto gpu = LoadCuda(net.bytes, precision);
      std::vector<OutputTensor> first_batch1;
      std::vector<float> first_x;
      for (int64_t N : {1, 8}) {
        const Shape shape{N, net.C, net.H, net.W};
        const auto x = RandomVector(static_cast<size_t>(NumElements(shape)), 100 + static_cast<uint32_t>(N), net.lo, net.hi);
        const std::vector<InputView> in{InputView{x.data(), shape}};
        const auto ref = cpu->Run(in);
        std::vector<OutputTensor> runs[3];
        try {
          for (auto& r : runs) r = gpu->Run(in);  // the first eager, then graph replays
        } catch (const FaceException& e) {
          CHECK(false, "%s %s N=%lld: %s", net.name, PrecisionName(precision), (long long)N, e.what());
          continue;
        }
        CHECK(runs[0].size() == ref.size(), "%s: %zu outputs", net.name, runs[0].size());
        for (size_t k = 0; k < ref.size() && k < runs[0].size(); ++k) {
          CHECK(runs[0][k].shape == ref[k].shape, "%s output %zu: dims %s, CPU %s", net.name, k, ShapeToString(runs[0][k].shape).c_str(),
                ShapeToString(ref[k].shape).c_str());
          if (runs[0][k].shape != ref[k].shape) continue;
          const Errors e = Compare(runs[0][k], ref[k], net.embedding);
          const double bound = (half ? 5e-2 : 1e-3) * e.scale;
          std::printf("%s %s N=%lld %s: max |gpu - cpu| = %.3g (scale %.3g, bound %.3g)", net.name, PrecisionName(precision),
                      (long long)N, gpu->outputs()[k].name.c_str(), e.max_abs, e.scale, bound);
          if (net.embedding) std::printf(", min cosine %.7f", e.min_cosine);
          std::printf("\n");
          CHECK(e.max_abs <= bound, "%s %s N=%lld output %zu: max error %g > %g", net.name, PrecisionName(precision), (long long)N, k,
                e.max_abs, bound);
          if (net.embedding)
            CHECK(e.min_cosine >= (half ? 0.999 : 0.99999), "%s %s N=%lld: cosine %.7f", net.name, PrecisionName(precision), (long long)N,
                  e.min_cosine);
        }
        CHECK(BitwiseEqual(runs[0], runs[1]) && BitwiseEqual(runs[0], runs[2]), "%s %s N=%lld: graph replays differ from the first run",
              net.name, PrecisionName(precision), (long long)N);
        // RunDevice on the same input: the same bits.
        Dev<float> xd(x);
        std::vector<Dev<float>> outs;
        std::vector<float*> out_ptrs;
        for (const Shape& s : gpu->OutputShapes({shape})) {
          outs.emplace_back(static_cast<size_t>(NumElements(s)));
          out_ptrs.push_back(outs.back().get());
        }
        gpu->RunDevice({DeviceInput{xd.get(), shape}}, out_ptrs);
        gpu->Synchronize();
        bool same = outs.size() == runs[0].size();
        for (size_t k = 0; same && k < outs.size(); ++k) {
          const auto host = outs[k].Download();
          same = std::memcmp(host.data(), runs[0][k].data.get(), host.size() * sizeof(float)) == 0;
        }
        CHECK(same, "%s %s N=%lld: RunDevice differs from Run", net.name, PrecisionName(precision), (long long)N);
        if (N == 1) first_batch1 = std::move(runs[0]), first_x = x;
      }
      // Back to batch 1 after batch 8: its plan (or a rebuilt one, if the arena grew) gives the same bits.
      if (!first_batch1.empty()) {
        const auto again = gpu->Run({InputView{first_x.data(), {1, net.C, net.H, net.W}}});
        CHECK(BitwiseEqual(again, first_batch1), "%s %s: batch 1 after batch 8 differs", net.name, PrecisionName(precision));
      }
    }
  }
  // The unsupported node fails the same way when run.
  OnnxWriter m;
  m.Input("x", {1, 4, 8, 8});
  m.IntInitializer("pads", {8}, {0, 0, 1, 1, 0, 0, 1, 1});
  m.Node("Pad", {"x", "pads"}, {"p"});
  m.Output("p");
  const auto bytes = m.Bytes();
  auto engine = LoadCuda(bytes, CudaPrecision::kFp32);
  const auto x = RandomVector(4 * 64, 3);
  ExpectError(ErrorCode::Model, {"Pad", "p_node"}, "Pad at run time", [&] { engine->Run({InputView{x.data(), {1, 4, 8, 8}}}); });
}

// ---- Timings -----------------------------------------------------------------------------------------

// Device in, device out (RunDevice + synchronise, wall clock), after three warm-up runs (the first
// builds the plan and captures the graph); at least 10 runs, then until 100 runs or 2 s.
void BenchNetwork(const TestNetwork& net, CudaPrecision precision) {
  auto engine = LoadCuda(net.bytes, precision);
  char kernel[64], size[96], rate[64];
  std::snprintf(kernel, sizeof kernel, "engine %s %s", net.name, PrecisionName(precision));
  for (int64_t N : {1, 8, 32, 64, 128, 256}) {
    const Shape shape{N, net.C, net.bench_h, net.bench_w};
    Dev<float> x(static_cast<size_t>(NumElements(shape)));
    CUDA_OK(cudaMemset(x.get(), 0, NumElements(shape) * sizeof(float)));
    std::vector<Dev<float>> outs;
    std::vector<float*> out_ptrs;
    for (const Shape& s : engine->OutputShapes({shape})) {
      outs.emplace_back(static_cast<size_t>(NumElements(s)));
      out_ptrs.push_back(outs.back().get());
    }
    const std::vector<DeviceInput> in{DeviceInput{x.get(), shape}};
    for (int i = 0; i < 3; ++i) engine->RunDevice(in, out_ptrs);
    engine->Synchronize();
    std::vector<double> ms;
    const auto start = std::chrono::steady_clock::now();
    while (ms.size() < 10 || (ms.size() < 100 && std::chrono::steady_clock::now() - start < std::chrono::seconds(2))) {
      const auto t0 = std::chrono::steady_clock::now();
      engine->RunDevice(in, out_ptrs);
      engine->Synchronize();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double p50 = ms[ms.size() / 2];
    const double p99 = ms[std::min(ms.size() - 1, static_cast<size_t>(std::ceil(ms.size() * 0.99)) - 1)];
    std::snprintf(size, sizeof size, "N=%lld %lldx%lld", (long long)N, (long long)net.bench_h, (long long)net.bench_w);
    std::snprintf(rate, sizeof rate, "p99 %.3f ms, %.0f img/s", p99, N / p50 * 1e3);
    Row(kernel, size, p50, rate);
  }
}

}  // namespace

int main(int argc, char** argv) {
  TestPlansOnHost();
  if (Failures()) return Finish("test_cuda_engine");
  if (!GpuUsable("test_cuda_engine")) return 77;
  const bool bench = BenchRequested(argc, argv);
  const auto t0 = std::chrono::steady_clock::now();
  TestNetworksOnDevice();
  std::printf("correctness: %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  if (bench && Failures() == 0) {
    TimingHeader("whole networks, RunDevice + synchronise, wall clock p50 of 10–100 runs after 3 warm-ups");
    for (const TestNetwork& net : Networks())
      for (CudaPrecision precision : {CudaPrecision::kFp32, CudaPrecision::kFp16}) BenchNetwork(net, precision);
  }
  return Finish("test_cuda_engine");
}
