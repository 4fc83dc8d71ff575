// CudaEngine: host code only (no kernels of its own), in a .cu so that CMake builds it only with CUDA
// and it gets the toolkit's headers (as cuda/cuda_probe.cu). Planning is split in two: the Planner
// works on the host alone (shapes, folding, binding every node to a launcher that reads its buffers
// from a per-slot pointer table), then BuildPlan allocates, uploads and fills that table.
#include "engine/cuda_engine.h"

#include "engine/arena_layout.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>

#include "common/buffer_cache.h"
#include "common/error.h"
#include "engine/graph_passes.h"
#include "ops/broadcast.h"
#include "ops/concat_cuda.h"
#include "ops/conv_cuda.h"
#include "ops/elementwise_cuda.h"
#include "ops/gemm_cuda.h"
#include "ops/kernels.h"
#include "ops/pool_cuda.h"
#include "ops/pool_geometry.h"
#include "ops/resize_cuda.h"
#include "ops/softmax_reduce_cuda.h"
#include "ops/transpose_cuda.h"

namespace facesight {

namespace {

void CudaCheck(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the engine stays usable
  Fail(ErrorCode::Device, what, ": CUDA error ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
}

// Device memory owned by one object (cudaMalloc / cudaFree).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes) CudaCheck(cudaMalloc(&p_, bytes), "cudaMalloc");
  }
  ~DeviceBuffer() { if (p_) cudaFree(p_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept { std::swap(p_, o.p_), std::swap(bytes_, o.bytes_); return *this; }
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Page-locked host memory (cudaMallocHost), grown on demand, for the copies of Run.
class PinnedBuffer {
 public:
  ~PinnedBuffer() { if (p_) cudaFreeHost(p_); }
  char* Reserve(size_t bytes) {
    if (bytes > bytes_) {
      if (p_) cudaFreeHost(p_);
      p_ = nullptr, bytes_ = 0;
      CudaCheck(cudaMallocHost(&p_, bytes), "cudaMallocHost");
      bytes_ = bytes;
    }
    return static_cast<char*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

int64_t DTypeBytes(CudaDType t) { return t == CudaDType::kF16 ? 2 : 4; }
const char* DTypeLabel(CudaDType t) { return t == CudaDType::kF16 ? "fp16" : "fp32"; }

constexpr int64_t kAlignBytes = 256;
int64_t RoundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// A launcher bound to its geometry: reads its buffers from the plan's per-slot pointer table.
using LaunchFn = std::function<CudaStatus(void* const* slots, cudaStream_t stream)>;

// A buffer of the plan: in the arena (a root), a view of another slot's memory, or a constant.
struct Slot {
  CudaDType dtype = CudaDType::kF32;
  int64_t count = 0;  // elements
  int root = 0;       // the slot whose memory this is (itself unless a view)
  int first_write = -1, last_read = -1;
  const HostTensor* constant = nullptr;  // a constant's device copy in `dtype`
};

struct Step {
  std::string label;
  LaunchFn launch;
};

// DeviceBuffer holding `t` as `dtype` (fp16: uploaded as fp32 and converted once), complete on return.
// The copy goes on `stream` (non-blocking: a plain cudaMemcpy would not be ordered before its work).
DeviceBuffer Upload(const HostTensor& t, CudaDType dtype, cudaStream_t stream) {
  const int64_t n = t.size();
  DeviceBuffer f32(static_cast<size_t>(n) * 4);
  if (n) CudaCheck(cudaMemcpyAsync(f32.get(), t.f.data(), n * 4, cudaMemcpyHostToDevice, stream), "uploading a weight");
  if (dtype == CudaDType::kF32) {
    CudaCheck(cudaStreamSynchronize(stream), "uploading a weight");
    return f32;
  }
  DeviceBuffer f16(static_cast<size_t>(n) * 2);
  ThrowIfFailed(CastCuda(CudaDType::kF32, CudaDType::kF16, n, f32.get(), f16.get(), stream), "converting a weight to fp16");
  CudaCheck(cudaStreamSynchronize(stream), "converting a weight to fp16");  // before f32 is freed
  return f16;
}

// Rank and fixed dims of the inputs, as Engine::Run checks them.
void CheckInputShapes(const std::vector<ValueInfo>& decls, const std::vector<Shape>& shapes) {
  if (shapes.size() != decls.size())
    Fail(ErrorCode::Input, "Expected ", decls.size(), " inputs but received ", shapes.size());
  for (size_t k = 0; k < shapes.size(); ++k) {
    const ValueInfo& decl = decls[k];
    const Shape& shape = shapes[k];
    if (!decl.has_shape) continue;
    if (decl.dims.size() != shape.size())
      Fail(ErrorCode::Input, "Expected rank ", decl.dims.size(), " for input '", decl.name, "' but received dims ", ShapeToString(shape));
    for (size_t d = 0; d < shape.size(); ++d)
      if (decl.dims[d].value > 0 && decl.dims[d].value != shape[d])
        Fail(ErrorCode::Input, "Expected size ", decl.dims[d].value, " at axis ", d, " of input '", decl.name,
             "' but received dims ", ShapeToString(shape));
  }
}

const char* const kCudaOps =
    "Conv, Gemm, MatMul, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, Resize, Upsample, Concat, "
    "Transpose, Add, Sub, Mul, Div, Pow, Max, Min, PRelu, Relu, LeakyRelu, Sigmoid, Clip, Tanh, Exp, HardSigmoid, "
    "HardSwish, BatchNormalization, Softmax, LogSoftmax, ReduceL2 / Sqrt(ReduceSumSquare) followed by Div (L2 "
    "normalisation), and the reshape family";

}  // namespace

// y = x / max(‖x‖₂ + add_eps, min_norm) along one axis: a ReduceL2 (or Sqrt of ReduceSumSquare) of the
// Div's numerator, optionally through Add / Clip / Max of a constant, into the Div's denominator.
struct CudaL2Chain {
  size_t reduce_node = 0;
  float add_eps = 0.f, min_norm = 0.f;
};

struct CudaPlan {
  // Host part (the Planner).
  std::deque<HostTensor> constants;  // folded or derived values (stable addresses)
  std::vector<Slot> slots;
  std::vector<Step> steps;
  std::vector<int> input_slots;      // fp32, in the arena, filled by copies before the steps
  std::vector<int> output_slots;     // fp32, copied out after the steps
  std::vector<Shape> output_shapes;
  std::vector<int64_t> offsets;      // per slot: byte offset in the arena, −1 when not an arena root
  int64_t arena_bytes = 0;
  // Device part (CudaEngine::BuildPlan).
  std::vector<DeviceBuffer> owned;   // this plan's constants on the device
  std::vector<void*> ptrs;           // per slot
  cudaGraphExec_t exec = nullptr;
  bool captured = false;             // capture was attempted (after the first run)

  ~CudaPlan() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

namespace {

struct Value {
  ValueDesc desc;
  int slot = -1;  // −1: a constant (desc.constant)
};

// Builds the host part of a plan: no CUDA call is made here.
class Planner {
 public:
  Planner(const OnnxModel& model, const std::vector<std::unique_ptr<Op>>& ops,
          const std::map<size_t, std::shared_ptr<CudaL2Chain>>& chains, const std::set<size_t>& chain_members,
          CudaPrecision precision)
      : model_(model), ops_(ops), chains_(chains), chain_members_(chain_members),
        compute_(precision == CudaPrecision::kFp16 ? CudaDType::kF16 : CudaDType::kF32) {}

  std::shared_ptr<CudaPlan> Build(const std::vector<Shape>& shapes) {
    plan_ = std::make_shared<CudaPlan>();
    for (auto& kv : model_.initializers) values_[kv.first] = Value{ConstantDesc(kv.second), -1};
    for (size_t k = 0; k < model_.inputs.size(); ++k) {
      Value v;
      v.desc.shape = shapes[k];
      v.slot = NewSlot(CudaDType::kF32, NumElements(shapes[k]));
      plan_->input_slots.push_back(v.slot);
      values_[model_.inputs[k].name] = v;
    }
    for (size_t n = 0; n < ops_.size(); ++n) PlanNode(n);
    for (const ValueInfo& o : model_.outputs) {
      auto it = values_.find(o.name);
      if (it == values_.end()) Fail(ErrorCode::Model, "Graph output '", o.name, "' is never computed");
      const Value& v = it->second;
      if (v.desc.dtype != DType::Float32) Fail(ErrorCode::Model, "Graph output '", o.name, "' is int64; facesight returns float32 outputs");
      const int slot = Use(v, CudaDType::kF32, "graph output '" + o.name + "'");
      Slot& root = plan_->slots[plan_->slots[slot].root];
      root.last_read = static_cast<int>(plan_->steps.size());  // copied out after the last step
      plan_->output_slots.push_back(slot);
      plan_->output_shapes.push_back(v.desc.shape);
    }
    LayOut();
    return plan_;
  }

 private:
  int NewSlot(CudaDType dtype, int64_t count) {
    Slot s;
    s.dtype = dtype;
    s.count = count;
    s.root = static_cast<int>(plan_->slots.size());
    plan_->slots.push_back(s);
    return s.root;
  }

  int ConstantSlot(const HostTensor* t, CudaDType dtype) {
    auto key = std::make_pair(t, dtype);
    auto it = constant_slots_.find(key);
    if (it != constant_slots_.end()) return it->second;
    const int s = NewSlot(dtype, t->size());
    plan_->slots[s].constant = t;
    constant_slots_[key] = s;
    return s;
  }

  // The slot holding value v as `dtype`: a constant's device copy, the value itself, or a cast of it
  // (made once per value and dtype).
  int Use(const Value& v, CudaDType dtype, const std::string& reader) {
    if (v.desc.constant) {
      if (v.desc.constant->dtype != DType::Float32)
        Fail(ErrorCode::Model, reader, ": an int64 constant is read as data; the CUDA engine runs float32 data only");
      return ConstantSlot(v.desc.constant, dtype);
    }
    const Slot& s = plan_->slots[v.slot];
    if (s.dtype == dtype) return v.slot;
    auto key = std::make_pair(v.slot, dtype);
    auto it = casts_.find(key);
    if (it != casts_.end()) return it->second;
    const int x = v.slot, y = NewSlot(dtype, s.count);
    const CudaDType from = s.dtype;
    const int64_t n = s.count;
    AddStep(std::string("Cast ") + DTypeLabel(from) + " -> " + DTypeLabel(dtype) + " " + ShapeToString(v.desc.shape) + " for " + reader,
            {x}, {y}, [=](void* const* p, cudaStream_t st) { return CastCuda(from, dtype, n, p[x], p[y], st); });
    casts_[key] = y;
    return y;
  }

  void AddStep(std::string label, const std::vector<int>& reads, const std::vector<int>& writes, LaunchFn launch) {
    const int index = static_cast<int>(plan_->steps.size());
    for (int r : reads) {
      if (r < 0) continue;
      Slot& root = plan_->slots[plan_->slots[r].root];
      root.last_read = std::max(root.last_read, index);
    }
    for (int w : writes) plan_->slots[w].first_write = index;
    plan_->steps.push_back(Step{std::move(label), std::move(launch)});
  }

  void PlanNode(size_t n) {
    const Op& op = *ops_[n];
    const Node& node = op.node();
    auto present = [&](const std::string& name) {
      auto it = values_.find(name);
      return it != values_.end() && it->second.desc.constant;
    };
    // A node an L2 chain absorbs: skipped when its data is computed at run time (the chain's Div runs it).
    if (chain_members_.count(n)) {
      bool constant = true;
      for (const std::string& name : node.inputs) constant = constant && (name.empty() || present(name));
      if (!constant) return;
    }
    auto chain = chains_.find(n);
    if (chain != chains_.end() && !values_.count(node.inputs[1])) return BindL2Norm(node, *chain->second);

    Inputs in;
    std::vector<const Value*> vals;
    bool all_constant = true;
    for (const std::string& name : node.inputs) {
      if (name.empty()) { in.push_back(nullptr); vals.push_back(nullptr); continue; }
      auto it = values_.find(name);
      if (it == values_.end()) Fail(ErrorCode::Model, node.Describe(), " reads '", name, "', which is not computed");
      in.push_back(&it->second.desc);
      vals.push_back(&it->second);
      all_constant = all_constant && it->second.desc.constant;
    }
    bool folded = false;
    std::vector<ValueDesc> out = InferOrFold(op, in, all_constant, &plan_->constants, &folded);
    if (folded) {
      for (size_t k = 0; k < node.outputs.size(); ++k)
        if (!node.outputs[k].empty()) values_[node.outputs[k]] = Value{out[k], -1};
      return;
    }
    if (op.IsView()) {
      const Slot& x = plan_->slots[vals[0]->slot];
      Value v;
      v.desc = out[0];
      v.slot = NewSlot(x.dtype, x.count);
      plan_->slots[v.slot].root = x.root;
      values_[node.outputs[0]] = v;
      return;
    }
    Bind(op, in, vals, out);
  }

  void SetOutput(const Node& node, const ValueDesc& desc, int slot) {
    Value v;
    v.desc = desc;
    v.desc.constant = nullptr;
    v.slot = slot;
    values_[node.outputs[0]] = v;
  }

  std::string Label(const Node& node, CudaDType dtype, const Inputs& in, const Shape& out) const {
    return node.Describe() + " " + DTypeLabel(dtype) + " " + (in.empty() || !in[0] ? std::string() : ShapeToString(in[0]->shape)) +
           " -> " + ShapeToString(out);
  }

  // One fp32 input, one fp32 output: the shape of most launchers (launch(x, y, stream)).
  template <typename Launch>
  void AddFloatStep(const Node& node, const std::string& label, const Value& x, const ValueDesc& out, Launch launch) {
    const int xs = Use(x, CudaDType::kF32, node.Describe()), ys = NewSlot(CudaDType::kF32, NumElements(out.shape));
    AddStep(label, {xs}, {ys}, [=](void* const* q, cudaStream_t st) {
      return launch(static_cast<const float*>(q[xs]), static_cast<float*>(q[ys]), st);
    });
    SetOutput(node, out, ys);
  }

  [[noreturn]] void NoKernel(const Node& node, const std::string& why) const {
    Fail(ErrorCode::Model, node.Describe(), ": no CUDA kernel for ", node.op_type, why.empty() ? "" : " ", why,
         ". The CUDA engine runs ", kCudaOps, "; run this model on the CPU engine");
  }

  void Bind(const Op& op, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    const Node& node = op.node();
    const std::string& t = node.op_type;
    const std::string reader = node.Describe();
    if (t == "Conv") return BindConv(op, in, vals, out);
    if (t == "Gemm") return BindGemm(node, in, vals, out);
    if (t == "MatMul") return BindMatMul(node, in, vals, out);
    if (t == "MaxPool" || t == "AveragePool" || t == "GlobalAveragePool" || t == "GlobalMaxPool") {
      const Shape& x = in[0]->shape;
      PoolCudaParams p;
      p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3];
      p.is_max = t.find("Max") != std::string::npos;
      p.global = t.rfind("Global", 0) == 0;
      p.OH = out[0].shape[2], p.OW = out[0].shape[3];
      if (!p.global) {
        const std::vector<int64_t> k = node.Ints("kernel_shape");
        const Window2d g = ResolveWindow2d(op, p.H, p.W, k[0], k[1], node.Int("ceil_mode", 0) != 0);
        p.kernel_h = g.kernel_h, p.kernel_w = g.kernel_w, p.stride_h = g.stride_h, p.stride_w = g.stride_w;
        p.dilation_h = g.dilation_h, p.dilation_w = g.dilation_w;
        p.pad_top = g.pad_top, p.pad_left = g.pad_left, p.pad_bottom = g.pad_bottom, p.pad_right = g.pad_right;
        p.count_include_pad = node.Int("count_include_pad", 0) != 0;
      }
      return AddFloatStep(node, Label(node, CudaDType::kF32, in, out[0].shape), *vals[0], out[0],
                          [=](const float* x, float* y, cudaStream_t st) { return PoolCuda(p, x, y, nullptr, 0, st); });
    }
    if (t == "Resize" || t == "Upsample") return BindResize(node, in, vals, out);
    if (t == "Concat") return BindConcat(op, in, vals, out);
    if (t == "Transpose") {
      std::vector<int64_t> perm = node.Ints("perm");
      const Shape& x = in[0]->shape;
      if (perm.empty()) for (size_t k = 0; k < x.size(); ++k) perm.push_back(static_cast<int64_t>(x.size() - 1 - k));
      const CudaDType dt = plan_->slots[vals[0]->slot].dtype;
      TransposeCudaParams p;
      if (!MakeTransposeCudaParams(x, perm, dt, &p)) NoKernel(node, "of rank above 8");
      const int xs = Use(*vals[0], dt, reader), ys = NewSlot(dt, NumElements(out[0].shape));
      AddStep(Label(node, dt, in, out[0].shape), {xs}, {ys},
              [=](void* const* q, cudaStream_t st) { return TransposeCuda(p, q[xs], q[ys], nullptr, 0, st); });
      return SetOutput(node, out[0], ys);
    }
    static const std::pair<const char*, BinaryCudaKind> binaries[] = {
        {"Add", BinaryCudaKind::kAdd}, {"Sub", BinaryCudaKind::kSub}, {"Mul", BinaryCudaKind::kMul},
        {"Div", BinaryCudaKind::kDiv}, {"Pow", BinaryCudaKind::kPow}, {"Max", BinaryCudaKind::kMax},
        {"Min", BinaryCudaKind::kMin}, {"PRelu", BinaryCudaKind::kPRelu}};
    for (auto& b : binaries) {
      if (t != b.first) continue;
      BinaryCudaParams p;
      if (!MakeBinaryCudaParams(b.second, in[0]->shape, in[1]->shape, &p)) NoKernel(node, "of rank above 8");
      const int as = Use(*vals[0], CudaDType::kF32, reader), bs = Use(*vals[1], CudaDType::kF32, reader);
      const int ys = NewSlot(CudaDType::kF32, NumElements(out[0].shape));
      AddStep(Label(node, CudaDType::kF32, in, out[0].shape), {as, bs}, {ys}, [=](void* const* q, cudaStream_t st) {
        return BinaryCuda(p, static_cast<const float*>(q[as]), static_cast<const float*>(q[bs]), static_cast<float*>(q[ys]),
                          nullptr, 0, st);
      });
      return SetOutput(node, out[0], ys);
    }
    static const std::pair<const char*, UnaryCudaKind> unaries[] = {
        {"Relu", UnaryCudaKind::kRelu}, {"LeakyRelu", UnaryCudaKind::kLeakyRelu}, {"Sigmoid", UnaryCudaKind::kSigmoid},
        {"Clip", UnaryCudaKind::kClip}, {"Tanh", UnaryCudaKind::kTanh}, {"Exp", UnaryCudaKind::kExp},
        {"HardSigmoid", UnaryCudaKind::kHardSigmoid}, {"HardSwish", UnaryCudaKind::kHardSwish}};
    for (auto& u : unaries) {
      if (t != u.first) continue;
      UnaryCudaParams p;
      p.kind = u.second;
      p.n = NumElements(out[0].shape);
      p.alpha = node.Float("alpha", u.second == UnaryCudaKind::kHardSigmoid ? 0.2f : 0.01f);
      p.beta = node.Float("beta", 0.5f);
      if (u.second == UnaryCudaKind::kClip) {
        if (model_.opset < 11) {
          p.lo = node.Float("min", p.lo);
          p.hi = node.Float("max", p.hi);
        } else {
          for (size_t k : {size_t{1}, size_t{2}}) {
            if (in.size() <= k || !in[k]) continue;
            if (!in[k]->constant) NoKernel(node, "with bounds computed at run time");
            (k == 1 ? p.lo : p.hi) = static_cast<float>(in[k]->constant->DoubleAt(0));
          }
        }
      }
      return AddFloatStep(node, Label(node, CudaDType::kF32, in, out[0].shape), *vals[0], out[0],
                          [=](const float* x, float* y, cudaStream_t st) { return UnaryCuda(p, x, y, nullptr, 0, st); });
    }
    if (t == "BatchNormalization") return BindBatchNorm(node, in, vals, out);
    if (t == "Softmax" || t == "LogSoftmax") {
      const Shape& x = in[0]->shape;
      const int64_t rank = static_cast<int64_t>(x.size());
      const int64_t axis = NormalizeAxis(op, node.Int("axis", model_.opset >= 13 ? -1 : 1), rank);
      SoftmaxCudaParams p;
      p.log = t == "LogSoftmax";
      p.rows = 1, p.n = 1;
      int64_t inner = 1;
      for (int64_t d = 0; d < rank; ++d) {
        if (d < axis) p.rows *= x[d];
        else if (model_.opset < 13 || d == axis) p.n *= x[d];
        else inner *= x[d];
      }
      if (inner != 1) NoKernel(node, "along an axis that is not the last");
      return AddFloatStep(node, Label(node, CudaDType::kF32, in, out[0].shape), *vals[0], out[0],
                          [=](const float* x, float* y, cudaStream_t st) { return SoftmaxCuda(p, x, y, nullptr, 0, st); });
    }
    NoKernel(node, "");
  }

  void BindConv(const Op& op, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    const Node& node = op.node();
    const Shape& x = in[0]->shape;
    const Shape& w = in[1]->shape;
    const Window2d g = ResolveWindow2d(op, x[2], x[3], w[2], w[3], /*ceil_mode=*/false);
    ConvCudaParams p;
    p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3];
    p.M = w[0], p.KH = w[2], p.KW = w[3];
    p.stride_h = g.stride_h, p.stride_w = g.stride_w, p.dilation_h = g.dilation_h, p.dilation_w = g.dilation_w;
    p.pad_top = g.pad_top, p.pad_left = g.pad_left;
    p.OH = out[0].shape[2], p.OW = out[0].shape[3];
    p.group = node.Int("group", 1);
    p.dtype = compute_;
    // The activation FuseActivations attached (as ConvOp reads it).
    const std::string act = node.Str(kFusedActivation, "");
    if (act == "Relu") p.act.kind = ActKind::Relu;
    else if (act == "LeakyRelu") p.act = Activation{ActKind::Leaky, node.Float(kFusedAlpha, 0.01f), 0.f};
    else if (act == "Clip") p.act = Activation{ActKind::Clip, node.Float(kFusedAlpha, -INFINITY), node.Float(kFusedBeta, INFINITY)};
    else if (act == "PRelu") p.act.kind = ActKind::PRelu;
    const bool has_slope = in.size() > 3 && in[3];
    if (p.act.kind == ActKind::PRelu && !has_slope) Fail(ErrorCode::Model, node.Describe(), ": fused PRelu without slopes");
    const std::string reader = node.Describe();
    const int xs = Use(*vals[0], compute_, reader), ws = Use(*vals[1], compute_, reader);
    const int bs = in.size() > 2 && in[2] ? Use(*vals[2], CudaDType::kF32, reader) : -1;
    const int ss = has_slope ? Use(*vals[3], CudaDType::kF32, reader) : -1;
    const int ys = NewSlot(compute_, NumElements(out[0].shape));
    AddStep(Label(node, compute_, in, out[0].shape) + " " + ConvCudaPathName(ConvCudaPathFor(p)), {xs, ws, bs, ss}, {ys},
            [=](void* const* q, cudaStream_t st) {
              const ConvCudaPtrs ptrs{q[xs], q[ws], bs >= 0 ? static_cast<const float*>(q[bs]) : nullptr,
                                      ss >= 0 ? static_cast<const float*>(q[ss]) : nullptr, q[ys]};
              return ConvCuda(p, ptrs, nullptr, 0, st);
            });
    SetOutput(node, out[0], ys);
  }

  void BindGemm(const Node& node, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    const Shape& a = in[0]->shape;
    GemmCudaParams p;
    p.trans_a = node.Int("transA", 0) != 0;
    p.trans_b = node.Int("transB", 0) != 0;
    p.alpha = node.Float("alpha", 1.f);
    p.beta = node.Float("beta", 1.f);
    p.M = out[0].shape[0], p.N = out[0].shape[1], p.K = p.trans_a ? a[0] : a[1];
    p.dtype = compute_;
    const std::string reader = node.Describe();
    int cs = -1;
    if (in.size() > 2 && in[2] && p.beta != 0.f) {
      const Shape& c = in[2]->shape;
      const int64_t cn = NumElements(c);
      if (c.size() <= 2 && cn == p.N && (c.size() < 2 || c[0] == 1)) {
        p.bias = GemmCudaParams::Bias::kCol;
        cs = Use(*vals[2], CudaDType::kF32, reader);
      } else if (cn == 1) {  // one value for every output: spread over the columns once
        if (!in[2]->constant) NoKernel(node, "with a scalar C computed at run time");
        plan_->constants.push_back(HostTensor::Float({p.N}, std::vector<float>(p.N, in[2]->constant->f[0])));
        p.bias = GemmCudaParams::Bias::kCol;
        cs = ConstantSlot(&plan_->constants.back(), CudaDType::kF32);
      } else if (c.size() == 2 && c[0] == p.M && c[1] == 1) {
        p.bias = GemmCudaParams::Bias::kRow;
        cs = Use(*vals[2], CudaDType::kF32, reader);
      } else if (c == Shape{p.M, p.N}) {
        p.bias = GemmCudaParams::Bias::kFull;
        cs = Use(*vals[2], CudaDType::kF32, reader);
      } else {
        NoKernel(node, "with C of dims " + ShapeToString(c));
      }
    }
    const int as = Use(*vals[0], compute_, reader), bs = Use(*vals[1], compute_, reader);
    const int ys = NewSlot(compute_, NumElements(out[0].shape));
    AddStep(Label(node, compute_, in, out[0].shape), {as, bs, cs}, {ys}, [=](void* const* q, cudaStream_t st) {
      const GemmCudaPtrs ptrs{q[as], q[bs], cs >= 0 ? static_cast<const float*>(q[cs]) : nullptr, q[ys]};
      return GemmCuda(p, ptrs, nullptr, 0, st);
    });
    SetOutput(node, out[0], ys);
  }

  void BindMatMul(const Node& node, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    Shape a = in[0]->shape, b = in[1]->shape;
    if (a.size() == 1) a.insert(a.begin(), 1);
    if (b.size() == 1) b.push_back(1);
    GemmCudaParams p;
    p.M = a[a.size() - 2], p.K = a.back(), p.N = b.back();
    p.dtype = compute_;
    const Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
    Shape batch;
    BroadcastShape(a_batch, b_batch, &batch);  // Infer checked it
    const int64_t items = NumElements(batch);
    // One launch when each side's batch is either the whole batch or a single matrix; otherwise one
    // launch per broadcast item.
    std::vector<int64_t> a_items, b_items;
    if ((NumElements(a_batch) == 1 || NumElements(a_batch) == items) && (NumElements(b_batch) == 1 || NumElements(b_batch) == items)) {
      p.batch = items;
      p.batch_stride_a = NumElements(a_batch) == 1 ? 0 : p.M * p.K;
      p.batch_stride_b = NumElements(b_batch) == 1 ? 0 : p.K * p.N;
      p.batch_stride_y = p.M * p.N;
      a_items.push_back(0), b_items.push_back(0);
    } else {
      const auto sa = BroadcastStrides(a_batch, batch), sb = BroadcastStrides(b_batch, batch);
      std::vector<int64_t> idx(batch.size(), 0);
      for (int64_t i = 0; i < items; ++i) {
        int64_t ia = 0, ib = 0;
        for (size_t k = 0; k < idx.size(); ++k) ia += idx[k] * sa[k], ib += idx[k] * sb[k];
        a_items.push_back(ia * p.M * p.K), b_items.push_back(ib * p.K * p.N);
        for (int64_t k = static_cast<int64_t>(idx.size()) - 1; k >= 0; --k) {
          if (++idx[k] < batch[k]) break;
          idx[k] = 0;
        }
      }
    }
    const std::string reader = node.Describe();
    const int as = Use(*vals[0], compute_, reader), bs = Use(*vals[1], compute_, reader);
    const int ys = NewSlot(compute_, NumElements(out[0].shape));
    const int64_t esize = DTypeBytes(compute_), y_item = p.M * p.N;
    AddStep(Label(node, compute_, in, out[0].shape), {as, bs}, {ys}, [=](void* const* q, cudaStream_t st) {
      for (size_t i = 0; i < a_items.size(); ++i) {
        const GemmCudaPtrs ptrs{static_cast<const char*>(q[as]) + a_items[i] * esize, static_cast<const char*>(q[bs]) + b_items[i] * esize,
                                nullptr, static_cast<char*>(q[ys]) + static_cast<int64_t>(i) * y_item * esize};
        const CudaStatus s = GemmCuda(p, ptrs, nullptr, 0, st);
        if (!s.ok()) return s;
      }
      return CudaStatus::Ok();
    });
    SetOutput(node, out[0], ys);
  }

  void BindResize(const Node& node, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    // The modes as ResizeOp resolves them (it has validated them when it was created).
    const int64_t opset = model_.opset;
    ResizeCudaParams p;
    const Shape& x = in[0]->shape;
    p.NC = x[0] * x[1], p.H = x[2], p.W = x[3], p.OH = out[0].shape[2], p.OW = out[0].shape[3];
    p.linear = node.Str("mode", "nearest") != "nearest";
    static const std::pair<const char*, ResizeCoordCuda> coords[] = {
        {"half_pixel", ResizeCoordCuda::kHalfPixel}, {"pytorch_half_pixel", ResizeCoordCuda::kPytorchHalfPixel},
        {"align_corners", ResizeCoordCuda::kAlignCorners}, {"asymmetric", ResizeCoordCuda::kAsymmetric},
        {"half_pixel_symmetric", ResizeCoordCuda::kHalfPixelSymmetric}};
    const std::string ct = node.Str("coordinate_transformation_mode", opset >= 11 ? "half_pixel" : "asymmetric");
    for (auto& c : coords) if (ct == c.first) p.coord = c.second;
    static const std::pair<const char*, ResizeRoundingCuda> roundings[] = {
        {"round_prefer_floor", ResizeRoundingCuda::kRoundPreferFloor}, {"round_prefer_ceil", ResizeRoundingCuda::kRoundPreferCeil},
        {"floor", ResizeRoundingCuda::kFloor}, {"ceil", ResizeRoundingCuda::kCeil}};
    const std::string nm = node.Str("nearest_mode", "round_prefer_floor");
    for (auto& r : roundings) if (nm == r.first) p.rounding = r.second;
    const bool upsample = node.op_type == "Upsample";
    if (opset < 10 || upsample) p.coord = ResizeCoordCuda::kAsymmetric, p.rounding = ResizeRoundingCuda::kFloor;
    if (!upsample && opset >= 11 && in.size() > 3 && in[3] && NumElements(in[3]->shape) > 0) {
      p.scale_h = static_cast<float>(p.OH) / static_cast<float>(p.H);  // sizes given
      p.scale_w = static_cast<float>(p.OW) / static_cast<float>(p.W);
    } else {
      std::vector<double> scales;
      if (upsample && opset < 9) {
        for (float f : node.attrs.count("scales") ? node.attrs.at("scales").floats : std::vector<float>{}) scales.push_back(f);
      } else {
        const size_t k = upsample || opset < 11 ? 1 : 2;
        const HostTensor* s = in.size() > k && in[k] ? in[k]->constant : nullptr;
        if (!s) NoKernel(node, "with scales computed at run time");
        for (int64_t i = 0; i < s->size(); ++i) scales.push_back(s->DoubleAt(i));
      }
      if (scales.size() != 4) NoKernel(node, "without 4 scales");
      p.scale_h = static_cast<float>(scales[2]), p.scale_w = static_cast<float>(scales[3]);
    }
    AddFloatStep(node, Label(node, CudaDType::kF32, in, out[0].shape), *vals[0], out[0],
                 [=](const float* x, float* y, cudaStream_t st) { return ResizeCuda(p, x, y, nullptr, 0, st); });
  }

  void BindConcat(const Op& op, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    const Node& node = op.node();
    if (in.size() > static_cast<size_t>(kConcatCudaMaxInputs)) NoKernel(node, "of more than 16 inputs");
    const Shape& ys_shape = out[0].shape;
    const int64_t axis = NormalizeAxis(op, node.Int("axis", 0), static_cast<int64_t>(ys_shape.size()));
    // fp16 when every input already is (the SSH branches, the heads), else fp32.
    CudaDType dt = compute_;
    for (const Value* v : vals)
      if (v->desc.constant || plan_->slots[v->slot].dtype != CudaDType::kF16) dt = CudaDType::kF32;
    ConcatCudaParams p;
    p.dtype = dt;
    p.count = static_cast<int32_t>(in.size());
    for (int64_t d = 0; d < axis; ++d) p.outer *= ys_shape[d];
    for (size_t d = axis + 1; d < ys_shape.size(); ++d) p.inner *= ys_shape[d];
    std::vector<int> xs;
    for (size_t k = 0; k < in.size(); ++k) {
      p.axis_sizes[k] = in[k]->shape[axis];
      xs.push_back(Use(*vals[k], dt, node.Describe()));
    }
    const int ys = NewSlot(dt, NumElements(ys_shape));
    AddStep(Label(node, dt, in, ys_shape), xs, {ys}, [=](void* const* q, cudaStream_t st) {
      ConcatCudaPtrs ptrs;
      for (size_t k = 0; k < xs.size(); ++k) ptrs.inputs[k] = q[xs[k]];
      ptrs.y = q[ys];
      return ConcatCuda(p, ptrs, nullptr, 0, st);
    });
    SetOutput(node, out[0], ys);
  }

  // Unfolded inference BatchNormalization with constant parameters: y = x·scale[c] + shift[c].
  void BindBatchNorm(const Node& node, const Inputs& in, const std::vector<const Value*>& vals, const std::vector<ValueDesc>& out) {
    for (size_t k = 1; k < 5; ++k)
      if (!in[k]->constant) NoKernel(node, "with parameters computed at run time");
    const Shape& x = in[0]->shape;
    const int64_t C = x[1];
    const float eps = node.Float("epsilon", 1e-5f);
    std::vector<float> scale(C), shift(C);
    for (int64_t c = 0; c < C; ++c) {
      scale[c] = in[1]->constant->f[c] / std::sqrt(in[4]->constant->f[c] + eps);
      shift[c] = in[2]->constant->f[c] - in[3]->constant->f[c] * scale[c];
    }
    Shape per_channel(x.size(), 1);
    per_channel[1] = C;
    plan_->constants.push_back(HostTensor::Float(per_channel, std::move(scale)));
    const int sc = ConstantSlot(&plan_->constants.back(), CudaDType::kF32);
    plan_->constants.push_back(HostTensor::Float(per_channel, std::move(shift)));
    const int sh = ConstantSlot(&plan_->constants.back(), CudaDType::kF32);
    BinaryCudaParams mul, add;
    MakeBinaryCudaParams(BinaryCudaKind::kMul, x, per_channel, &mul);
    MakeBinaryCudaParams(BinaryCudaKind::kAdd, x, per_channel, &add);
    if (x.size() > static_cast<size_t>(kBinaryCudaMaxRank)) NoKernel(node, "of rank above 8");
    const int xs = Use(*vals[0], CudaDType::kF32, node.Describe()), ys = NewSlot(CudaDType::kF32, NumElements(x));
    AddStep(Label(node, CudaDType::kF32, in, x), {xs, sc, sh}, {ys}, [=](void* const* q, cudaStream_t st) {
      float* y = static_cast<float*>(q[ys]);
      const CudaStatus s = BinaryCuda(mul, static_cast<const float*>(q[xs]), static_cast<const float*>(q[sc]), y, nullptr, 0, st);
      return s.ok() ? BinaryCuda(add, y, static_cast<const float*>(q[sh]), y, nullptr, 0, st) : s;
    });
    SetOutput(node, out[0], ys);
  }

  void BindL2Norm(const Node& div, const CudaL2Chain& chain) {
    const Node& reduce = model_.nodes[chain.reduce_node];
    const Value& x = values_.at(div.inputs[0]);
    const Shape& xs_shape = x.desc.shape;
    std::vector<int64_t> axes = reduce.Ints("axes");
    if (reduce.inputs.size() > 1 && !reduce.inputs[1].empty()) {
      auto it = values_.find(reduce.inputs[1]);
      if (it == values_.end() || !it->second.desc.constant) NoKernel(reduce, "with axes computed at run time");
      axes.clear();
      for (int64_t k = 0; k < it->second.desc.constant->size(); ++k) axes.push_back(it->second.desc.constant->IntAt(k));
    }
    const int64_t rank = static_cast<int64_t>(xs_shape.size());
    if (axes.size() != 1 || axes[0] < -rank || axes[0] >= rank) NoKernel(reduce, "over other than one axis");
    const int64_t axis = axes[0] < 0 ? axes[0] + rank : axes[0];
    L2NormCudaParams p;
    p.rows = 1, p.n = xs_shape[axis];
    int64_t inner = 1;
    for (int64_t d = 0; d < rank; ++d) {
      if (d < axis) p.rows *= xs_shape[d];
      else if (d > axis) inner *= xs_shape[d];
    }
    if (inner != 1) NoKernel(reduce, "along an axis that is not the last (in an L2 normalisation)");
    p.add_eps = chain.add_eps, p.min_norm = chain.min_norm;
    ValueDesc desc;
    desc.shape = xs_shape;
    AddFloatStep(div, reduce.Describe() + " .. " + div.Describe() + " as L2 normalisation fp32 " + ShapeToString(xs_shape), x, desc,
                 [=](const float* xp, float* y, cudaStream_t st) { return L2NormCuda(p, xp, y, nullptr, 0, st); });
  }

  // The arena, laid out as the CPU engine's (LayOutArena); in bytes here.
  void LayOut() {
    std::vector<Slot>& slots = plan_->slots;
    plan_->offsets.assign(slots.size(), -1);
    std::vector<int> order;
    for (size_t s = 0; s < slots.size(); ++s) {
      Slot& slot = slots[s];
      if (slot.root != static_cast<int>(s) || slot.constant || slot.count == 0) continue;
      slot.last_read = std::max(slot.last_read, slot.first_write);  // written and never read: live for its step
      order.push_back(static_cast<int>(s));
    }
    std::vector<ArenaValue> values;
    for (int s : order)
      values.push_back({RoundUp(slots[s].count * DTypeBytes(slots[s].dtype), kAlignBytes), slots[s].first_write, slots[s].last_read});
    std::vector<int64_t> offsets;
    plan_->arena_bytes = LayOutArena(values, &offsets);
    for (size_t k = 0; k < order.size(); ++k) plan_->offsets[order[k]] = offsets[k];
  }

  const OnnxModel& model_;
  const std::vector<std::unique_ptr<Op>>& ops_;
  const std::map<size_t, std::shared_ptr<CudaL2Chain>>& chains_;
  const std::set<size_t>& chain_members_;
  const CudaDType compute_;
  std::shared_ptr<CudaPlan> plan_;
  std::map<std::string, Value> values_;
  std::map<std::pair<int, CudaDType>, int> casts_;
  std::map<std::pair<const HostTensor*, CudaDType>, int> constant_slots_;
};

// Finds the L2 normalisations (see CudaL2Chain): each intermediate value must have the chain's next
// node as its only reader and must not be a graph output.
void FindL2Chains(const OnnxModel& m, std::map<size_t, std::shared_ptr<CudaL2Chain>>* chains, std::set<size_t>* members) {
  std::map<std::string, int> readers;
  std::map<std::string, size_t> producer;
  for (size_t k = 0; k < m.nodes.size(); ++k) {
    for (const std::string& in : m.nodes[k].inputs) ++readers[in];
    for (const std::string& out : m.nodes[k].outputs) producer[out] = k;
  }
  for (const ValueInfo& out : m.outputs) readers[out.name] += 2;
  auto scalar = [&](const std::string& name, float* v) {
    auto it = m.initializers.find(name);
    if (it == m.initializers.end() || it->second.dtype != DType::Float32 || it->second.size() != 1) return false;
    *v = it->second.f[0];
    return true;
  };
  auto keeps_dims = [](const Node& n) { return n.Int("keepdims", 1) != 0; };
  for (size_t k = 0; k < m.nodes.size(); ++k) {
    const Node& div = m.nodes[k];
    if (div.op_type != "Div" || div.inputs.size() != 2 || div.inputs[0].empty()) continue;
    auto chain = std::make_shared<CudaL2Chain>();
    std::vector<size_t> chain_nodes;
    bool clamped = false, added = false, found = false;
    std::string cur = div.inputs[1];
    while (!found) {
      auto p = producer.find(cur);
      if (p == producer.end() || readers[cur] != 1) break;
      const Node& n = m.nodes[p->second];
      if (n.outputs.size() != 1) break;
      float c = 0.f;
      if (n.op_type == "Clip" && !clamped && !added && !n.inputs.empty()) {
        float lo = -INFINITY, hi = INFINITY;
        if (m.opset < 11) {
          lo = n.Float("min", lo), hi = n.Float("max", hi);
        } else {
          if (n.inputs.size() > 1 && !n.inputs[1].empty() && !scalar(n.inputs[1], &lo)) break;
          if (n.inputs.size() > 2 && !n.inputs[2].empty() && !scalar(n.inputs[2], &hi)) break;
        }
        if (hi != INFINITY) break;
        chain->min_norm = lo, clamped = true, cur = n.inputs[0];
      } else if (n.op_type == "Max" && !clamped && !added && n.inputs.size() == 2 &&
                 (scalar(n.inputs[1], &c) || scalar(n.inputs[0], &c))) {
        chain->min_norm = c, clamped = true, cur = scalar(n.inputs[1], &c) ? n.inputs[0] : n.inputs[1];
      } else if (n.op_type == "Add" && !added && n.inputs.size() == 2 && (scalar(n.inputs[1], &c) || scalar(n.inputs[0], &c))) {
        chain->add_eps = c, added = true, cur = scalar(n.inputs[1], &c) ? n.inputs[0] : n.inputs[1];
      } else if (n.op_type == "ReduceL2" && keeps_dims(n) && n.inputs[0] == div.inputs[0]) {
        chain->reduce_node = p->second, found = true;
      } else if (n.op_type == "Sqrt") {
        auto q = producer.find(n.inputs[0]);
        if (q == producer.end() || readers[n.inputs[0]] != 1) break;
        const Node& r = m.nodes[q->second];
        if (r.op_type != "ReduceSumSquare" || !keeps_dims(r) || r.inputs[0] != div.inputs[0]) break;
        chain_nodes.push_back(p->second);
        chain->reduce_node = q->second, found = true;
        chain_nodes.push_back(q->second);
        continue;
      } else {
        break;
      }
      chain_nodes.push_back(p->second);
    }
    if (!found) continue;
    (*chains)[k] = chain;
    members->insert(chain_nodes.begin(), chain_nodes.end());
  }
}

}  // namespace

struct CudaEngine::DeviceMemory {
  DeviceBuffer arena;
  std::map<std::pair<const HostTensor*, CudaDType>, DeviceBuffer> weights;
  PinnedBuffer staging_in, staging_out;
};

std::unique_ptr<CudaEngine> CudaEngine::Load(const uint8_t* data, size_t size, const CudaEngineOptions& options) {
  OnnxModel model = ParseOnnx(data, size);
  FoldBatchNorm(model);
  FuseActivations(model);
  return std::unique_ptr<CudaEngine>(new CudaEngine(std::move(model), options));
}

CudaEngine::CudaEngine(OnnxModel model, const CudaEngineOptions& options) : model_(std::move(model)), options_(options) {
  for (const Node& n : model_.nodes) ops_.push_back(CreateOp(n, model_.opset));
  for (auto& kv : model_.initializers) initializers_.insert(&kv.second);
  FindL2Chains(model_, &l2_chains_, &l2_chain_members_);
}

CudaEngine::~CudaEngine() {
  if (!device_ready_) return;
  cudaSetDevice(options_.device);
  cudaStreamSynchronize(stream_);
  plans_.clear();
  memory_.reset();
  cudaStreamDestroy(stream_);
}

void CudaEngine::EnsureDevice() {
  if (device_ready_) {
    CudaCheck(cudaSetDevice(options_.device), "cudaSetDevice");
    return;
  }
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    Fail(ErrorCode::Device, "No usable CUDA device: ", err != cudaSuccess ? cudaGetErrorString(err) : "no device found");
  }
  if (options_.device < 0 || options_.device >= count)
    Fail(ErrorCode::Device, "Expected a CUDA device index below ", count, " but received ", options_.device);
  CudaCheck(cudaSetDevice(options_.device), "cudaSetDevice");
  CudaCheck(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  memory_ = std::make_unique<DeviceMemory>();
  device_ready_ = true;
}

cudaStream_t CudaEngine::stream() {
  std::lock_guard<std::mutex> lock(mutex_);
  EnsureDevice();
  return stream_;
}

void CudaEngine::Synchronize() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (device_ready_) CudaCheck(cudaStreamSynchronize(stream_), "running the network");
}

std::vector<std::string> CudaEngine::DescribePlan(const std::vector<Shape>& input_shapes) {
  CheckInputShapes(model_.inputs, input_shapes);
  std::shared_ptr<CudaPlan> plan = Planner(model_, ops_, l2_chains_, l2_chain_members_, options_.precision).Build(input_shapes);
  std::vector<std::string> lines;
  for (const Step& s : plan->steps) lines.push_back(s.label);
  return lines;
}

const void* CudaEngine::Weight(const HostTensor* tensor, CudaDType dtype) {
  auto key = std::make_pair(tensor, dtype);
  auto it = memory_->weights.find(key);
  if (it == memory_->weights.end()) it = memory_->weights.emplace(key, Upload(*tensor, dtype, stream_)).first;
  return it->second.get();
}

std::shared_ptr<CudaPlan> CudaEngine::GetPlan(const std::vector<Shape>& shapes) {
  for (auto it = plans_.begin(); it != plans_.end(); ++it) {
    if (it->first == shapes) {
      plans_.splice(plans_.begin(), plans_, it);
      return plans_.front().second;
    }
  }
  std::shared_ptr<CudaPlan> plan = BuildPlan(shapes);
  plans_.emplace_front(shapes, plan);
  while (static_cast<int>(plans_.size()) > std::max(1, options_.max_cached_plans)) plans_.pop_back();
  return plan;
}

std::shared_ptr<CudaPlan> CudaEngine::BuildPlan(const std::vector<Shape>& shapes) {
  std::shared_ptr<CudaPlan> plan = Planner(model_, ops_, l2_chains_, l2_chain_members_, options_.precision).Build(shapes);
  // One arena for every plan of the engine (runs are serialised on one stream). Growing it moves it:
  // the plans (and graphs) that point into the old one are dropped.
  if (memory_->arena.bytes() < static_cast<size_t>(plan->arena_bytes)) {
    CudaCheck(cudaStreamSynchronize(stream_), "running the network");
    plans_.clear();
    memory_->arena = DeviceBuffer();
    memory_->arena = DeviceBuffer(static_cast<size_t>(plan->arena_bytes));
  }
  char* base = static_cast<char*>(memory_->arena.get());
  plan->ptrs.assign(plan->slots.size(), nullptr);
  for (size_t s = 0; s < plan->slots.size(); ++s) {
    const Slot& slot = plan->slots[s];
    if (slot.constant) {
      if (initializers_.count(slot.constant)) {
        plan->ptrs[s] = const_cast<void*>(Weight(slot.constant, slot.dtype));
      } else {
        plan->owned.push_back(Upload(*slot.constant, slot.dtype, stream_));
        plan->ptrs[s] = plan->owned.back().get();
      }
    } else if (slot.root != static_cast<int>(s)) {
      plan->ptrs[s] = plan->ptrs[slot.root];  // roots come before their views
    } else if (plan->offsets[s] >= 0) {
      plan->ptrs[s] = base + plan->offsets[s];
    }
  }
  return plan;
}

void CudaEngine::Execute(CudaPlan& plan) {
  if (plan.exec) {
    CudaCheck(cudaGraphLaunch(plan.exec, stream_), "cudaGraphLaunch");
    return;
  }
  // FACESIGHT_PROFILE=1 prints each step's time to stderr (a developer's tool: it synchronises after
  // every step and turns graph capture off).
  static const bool profile = std::getenv("FACESIGHT_PROFILE") != nullptr;
  void* const* p = plan.ptrs.data();
  for (const Step& step : plan.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    ThrowIfFailed(step.launch(p, stream_), step.label.c_str());
    if (!profile) continue;
    CudaCheck(cudaStreamSynchronize(stream_), step.label.c_str());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "facesight-profile cuda %8.3f ms  %s\n", ms, step.label.c_str());
  }
  if (!options_.cuda_graphs || profile || plan.captured) return;
  // After the first run: capture the same launches as one graph for the runs to come.
  plan.captured = true;
  CudaCheck(cudaStreamSynchronize(stream_), "running the network");  // the eager run, before capture begins
  CudaCheck(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  CudaStatus failed;
  const char* failed_label = "";
  for (const Step& step : plan.steps) {
    failed = step.launch(p, stream_);
    if (!failed.ok()) {
      failed_label = step.label.c_str();
      break;
    }
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (!failed.ok()) {
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    ThrowIfFailed(failed, failed_label);
  }
  CudaCheck(ended, "cudaStreamEndCapture");
  const cudaError_t made = cudaGraphInstantiate(&plan.exec, graph, 0);
  cudaGraphDestroy(graph);
  if (made != cudaSuccess) plan.exec = nullptr;
  CudaCheck(made, "cudaGraphInstantiate");
}

std::vector<OutputTensor> CudaEngine::Run(const std::vector<InputView>& inputs) {
  std::vector<Shape> shapes;
  for (const InputView& in : inputs) shapes.push_back(in.shape);
  CheckInputShapes(model_.inputs, shapes);
  for (size_t k = 0; k < inputs.size(); ++k) {
    const int64_t bad = Kernels().first_non_finite(inputs[k].data, NumElements(shapes[k]));
    if (bad >= 0)
      Fail(ErrorCode::Input, "Expected finite values for input '", model_.inputs[k].name, "' but received ",
           std::isnan(inputs[k].data[bad]) ? "NaN" : "Infinity", " at index ", bad);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  EnsureDevice();
  std::shared_ptr<CudaPlan> plan = GetPlan(shapes);
  size_t in_bytes = 0, out_bytes = 0;
  for (const Shape& s : shapes) in_bytes += NumElements(s) * sizeof(float);
  for (const Shape& s : plan->output_shapes) out_bytes += NumElements(s) * sizeof(float);
  char* staged = memory_->staging_in.Reserve(in_bytes);
  for (size_t k = 0; k < inputs.size(); ++k) {
    const size_t bytes = NumElements(shapes[k]) * sizeof(float);
    if (!bytes) continue;
    std::memcpy(staged, inputs[k].data, bytes);
    CudaCheck(cudaMemcpyAsync(plan->ptrs[plan->input_slots[k]], staged, bytes, cudaMemcpyHostToDevice, stream_), "copying an input");
    staged += bytes;
  }
  Execute(*plan);
  char* results = memory_->staging_out.Reserve(out_bytes);
  char* at = results;
  for (size_t k = 0; k < plan->output_slots.size(); ++k) {
    const size_t bytes = NumElements(plan->output_shapes[k]) * sizeof(float);
    if (!bytes) continue;
    CudaCheck(cudaMemcpyAsync(at, plan->ptrs[plan->output_slots[k]], bytes, cudaMemcpyDeviceToHost, stream_), "copying an output");
    at += bytes;
  }
  CudaCheck(cudaStreamSynchronize(stream_), "running the network");
  std::vector<OutputTensor> out(plan->output_slots.size());
  at = results;
  for (size_t k = 0; k < out.size(); ++k) {
    const size_t n = static_cast<size_t>(NumElements(plan->output_shapes[k]));
    out[k].shape = plan->output_shapes[k];
    out[k].data = MakeCachedFloats(n);
    std::memcpy(out[k].data.get(), at, n * sizeof(float));
    at += n * sizeof(float);
  }
  return out;
}

std::vector<Shape> CudaEngine::OutputShapes(const std::vector<Shape>& input_shapes) {
  CheckInputShapes(model_.inputs, input_shapes);
  std::lock_guard<std::mutex> lock(mutex_);
  EnsureDevice();
  return GetPlan(input_shapes)->output_shapes;
}

void CudaEngine::RunDevice(const std::vector<DeviceInput>& inputs, const std::vector<float*>& outputs) {
  std::vector<Shape> shapes;
  for (const DeviceInput& in : inputs) shapes.push_back(in.shape);
  CheckInputShapes(model_.inputs, shapes);
  std::lock_guard<std::mutex> lock(mutex_);
  EnsureDevice();
  std::shared_ptr<CudaPlan> plan = GetPlan(shapes);
  if (outputs.size() != plan->output_slots.size())
    Fail(ErrorCode::Input, "Expected ", plan->output_slots.size(), " output pointers but received ", outputs.size());
  for (size_t k = 0; k < inputs.size(); ++k) {
    const size_t bytes = NumElements(shapes[k]) * sizeof(float);
    if (bytes)
      CudaCheck(cudaMemcpyAsync(plan->ptrs[plan->input_slots[k]], inputs[k].data, bytes, cudaMemcpyDeviceToDevice, stream_),
                "copying an input");
  }
  Execute(*plan);
  for (size_t k = 0; k < outputs.size(); ++k) {
    const size_t bytes = NumElements(plan->output_shapes[k]) * sizeof(float);
    if (bytes)
      CudaCheck(cudaMemcpyAsync(outputs[k], plan->ptrs[plan->output_slots[k]], bytes, cudaMemcpyDeviceToDevice, stream_),
                "copying an output");
  }
}

}  // namespace facesight
