// Element-wise ops: broadcasting binaries (also on int64 for shape arithmetic), unary activations,
// PRelu, and inference-mode BatchNormalization when it could not be folded into a Conv.
#include <cmath>
#include <limits>

#include "engine/op.h"
#include "ops/broadcast.h"
#include "ops/layout.h"

namespace facesight {
namespace {

enum class BinaryKind { Add, Sub, Mul, Div, Pow, Max, Min, PRelu };

template <typename T>
inline T ApplyBinary(BinaryKind kind, T a, T b) {
  switch (kind) {
    case BinaryKind::Add: return a + b;
    case BinaryKind::Sub: return a - b;
    case BinaryKind::Mul: return a * b;
    case BinaryKind::Div: return b == T(0) && std::is_integral<T>::value ? T(0) : a / b;
    case BinaryKind::Pow: return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case BinaryKind::Max: return a > b ? a : b;
    case BinaryKind::Min: return a < b ? a : b;
    case BinaryKind::PRelu: return a >= T(0) ? a : a * b;
  }
  return a;
}

// Whether an elementwise op may run over NCHW16c data: every computed input is a blockable 4-D float
// value of one shape, and every constant one is a single number.
bool ElementwiseOverBlocks(const Inputs& in) {
  const Shape* shape = nullptr;
  for (const ValueDesc* v : in) {
    if (!v) continue;
    if (v->constant) {
      if (NumElements(v->shape) != 1) return false;
      continue;
    }
    if (v->dtype != DType::Float32 || !CanBlock(v->shape) || (shape && *shape != v->shape)) return false;
    shape = &v->shape;
  }
  return shape != nullptr;
}

class BinaryOp : public Op {
 public:
  BinaryOp(const Node& node, BinaryKind kind) : Op(node), kind_(kind) {
    if (node.inputs.size() != 2) ModelError("expects 2 inputs, got ", node.inputs.size());
  }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& a = Required(in, 0);
    const ValueDesc& b = Required(in, 1);
    Shape y;
    if (!BroadcastShape(a.shape, b.shape, &y))
      Fail(ErrorCode::Input, node_.Describe(), ": cannot broadcast ", ShapeToString(a.shape), " with ", ShapeToString(b.shape));
    return {ValueDesc{a.dtype == DType::Int64 && b.dtype == DType::Int64 ? DType::Int64 : DType::Float32, y, nullptr}};
  }
  // Same-shaped data inputs combine index by index, so the layout does not matter; a constant operand
  // must be a scalar (a per-channel constant would broadcast along NCHW's channel axis).
  LayoutUse Layout(const Inputs& in) const override {
    return kind_ != BinaryKind::PRelu && ElementwiseOverBlocks(in) ? LayoutUse::Agnostic : LayoutUse::Nchw;
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape as = in[0]->shape, bs = in[1]->shape, ys = out[0].shape;
    const BinaryKind kind = kind_;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      if (as == ys && bs == ys) {  // the common same-shape case splits across threads
        ParallelFor(pool, NumElements(ys), 1 << 14, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) outp[0][i] = ApplyBinary(kind, inp[0][i], inp[1][i]);
        });
        return;
      }
      BroadcastBinary(inp[0], as, inp[1], bs, outp[0], ys, [kind](float x, float y) { return ApplyBinary(kind, x, y); });
    };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    if (out[0].dtype == DType::Float32 && in[0]->dtype == DType::Float32 && in[1]->dtype == DType::Float32)
      return Op::Fold(in, out);
    // Shape arithmetic: compute in int64 (a float operand is converted).
    auto as_int = [](const HostTensor& t) {
      std::vector<int64_t> v(t.size());
      for (int64_t k = 0; k < t.size(); ++k) v[k] = t.IntAt(k);
      return v;
    };
    auto a = as_int(*in[0]->constant), b = as_int(*in[1]->constant);
    std::vector<int64_t> y(NumElements(out[0].shape));
    const BinaryKind kind = kind_;
    BroadcastBinary(a.data(), in[0]->shape, b.data(), in[1]->shape, y.data(), out[0].shape,
                    [kind](int64_t x, int64_t z) { return ApplyBinary(kind, x, z); });
    return {HostTensor::Int(out[0].shape, std::move(y))};
  }

 private:
  BinaryKind kind_;
};

enum class UnaryKind { Relu, LeakyRelu, Sigmoid, Sqrt, Exp, Log, Tanh, Neg, Abs, Clip, Reciprocal, Floor, Ceil, HardSigmoid, HardSwish, Erf };

class UnaryOp : public Op {
 public:
  UnaryOp(const Node& node, int64_t opset, UnaryKind kind) : Op(node), kind_(kind), opset_(opset) {
    alpha_ = node.Float("alpha", kind == UnaryKind::HardSigmoid ? 0.2f : 0.01f);
    beta_ = node.Float("beta", 0.5f);
  }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    if (x.dtype != DType::Float32 && kind_ != UnaryKind::Neg && kind_ != UnaryKind::Abs) ModelError("expects a float input");
    return {ValueDesc{x.dtype, x.shape, nullptr}};
  }
  LayoutUse Layout(const Inputs& in) const override {
    return ElementwiseOverBlocks(in) ? LayoutUse::Agnostic : LayoutUse::Nchw;
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (kind_ == UnaryKind::Clip) {
      if (opset_ < 11) {
        lo = node_.Float("min", lo);
        hi = node_.Float("max", hi);
      } else {
        if (in.size() > 1 && in[1]) lo = ConstantInput(in, 1, "Clip min").DoubleAt(0);
        if (in.size() > 2 && in[2]) hi = ConstantInput(in, 2, "Clip max").DoubleAt(0);
      }
    }
    const UnaryKind kind = kind_;
    const float alpha = alpha_, beta = beta_;
    const int64_t n = NumElements(out[0].shape);
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, n, 1 << 14, [&](int64_t b, int64_t e) {
        const float* x = inp[0];
        float* y = outp[0];
        switch (kind) {
          case UnaryKind::Relu: for (int64_t i = b; i < e; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f; break;
          case UnaryKind::LeakyRelu: for (int64_t i = b; i < e; ++i) y[i] = x[i] >= 0.f ? x[i] : x[i] * alpha; break;
          case UnaryKind::Sigmoid: for (int64_t i = b; i < e; ++i) y[i] = 1.f / (1.f + std::exp(-x[i])); break;
          case UnaryKind::Sqrt: for (int64_t i = b; i < e; ++i) y[i] = std::sqrt(x[i]); break;
          case UnaryKind::Exp: for (int64_t i = b; i < e; ++i) y[i] = std::exp(x[i]); break;
          case UnaryKind::Log: for (int64_t i = b; i < e; ++i) y[i] = std::log(x[i]); break;
          case UnaryKind::Tanh: for (int64_t i = b; i < e; ++i) y[i] = std::tanh(x[i]); break;
          case UnaryKind::Neg: for (int64_t i = b; i < e; ++i) y[i] = -x[i]; break;
          case UnaryKind::Abs: for (int64_t i = b; i < e; ++i) y[i] = std::fabs(x[i]); break;
          case UnaryKind::Clip: for (int64_t i = b; i < e; ++i) y[i] = std::min(std::max(x[i], lo), hi); break;
          case UnaryKind::Reciprocal: for (int64_t i = b; i < e; ++i) y[i] = 1.f / x[i]; break;
          case UnaryKind::Floor: for (int64_t i = b; i < e; ++i) y[i] = std::floor(x[i]); break;
          case UnaryKind::Ceil: for (int64_t i = b; i < e; ++i) y[i] = std::ceil(x[i]); break;
          case UnaryKind::HardSigmoid: for (int64_t i = b; i < e; ++i) y[i] = std::min(1.f, std::max(0.f, alpha * x[i] + beta)); break;
          case UnaryKind::HardSwish: for (int64_t i = b; i < e; ++i) y[i] = x[i] * std::min(1.f, std::max(0.f, x[i] / 6.f + 0.5f)); break;
          case UnaryKind::Erf: for (int64_t i = b; i < e; ++i) y[i] = std::erf(x[i]); break;
        }
      });
    };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    if (in[0]->dtype == DType::Float32) return Op::Fold(in, out);
    std::vector<int64_t> y = in[0]->constant->i;
    for (auto& v : y) v = kind_ == UnaryKind::Neg ? -v : std::llabs(v);
    return {HostTensor::Int(out[0].shape, std::move(y))};
  }

 private:
  UnaryKind kind_;
  int64_t opset_;
  float alpha_, beta_;
};

// Inference BatchNormalization on [N, C, ...]: y = x * scale[c] + shift[c].
class BatchNormOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    if (x.shape.size() < 2) ModelError("expects an input of rank ≥ 2");
    for (size_t k = 1; k < 5; ++k)
      if (NumElements(Required(in, k).shape) != x.shape[1]) ModelError("parameter ", k, " must have ", x.shape[1], " values");
    return {ValueDesc{DType::Float32, x.shape, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape s = out[0].shape;
    const int64_t N = s[0], C = s[1], inner = NumElements(s) / (N * C);
    const float eps = node_.Float("epsilon", 1e-5f);
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, N * C, 1, [&](int64_t b, int64_t e) {
        for (int64_t nc = b; nc < e; ++nc) {
          const int64_t c = nc % C;
          const float scale = inp[1][c] / std::sqrt(inp[4][c] + eps);
          const float shift = inp[2][c] - inp[3][c] * scale;
          const float* x = inp[0] + nc * inner;
          float* y = outp[0] + nc * inner;
          for (int64_t i = 0; i < inner; ++i) y[i] = x[i] * scale + shift;
        }
      });
    };
  }
};

}  // namespace

std::unique_ptr<Op> MakeElementwise(const Node& node, int64_t opset) {
  static const std::pair<const char*, BinaryKind> binaries[] = {
      {"Add", BinaryKind::Add}, {"Sub", BinaryKind::Sub}, {"Mul", BinaryKind::Mul}, {"Div", BinaryKind::Div},
      {"Pow", BinaryKind::Pow}, {"Max", BinaryKind::Max}, {"Min", BinaryKind::Min}, {"PRelu", BinaryKind::PRelu}};
  for (auto& b : binaries)
    if (node.op_type == b.first) return std::make_unique<BinaryOp>(node, b.second);
  static const std::pair<const char*, UnaryKind> unaries[] = {
      {"Relu", UnaryKind::Relu}, {"LeakyRelu", UnaryKind::LeakyRelu}, {"Sigmoid", UnaryKind::Sigmoid},
      {"Sqrt", UnaryKind::Sqrt}, {"Exp", UnaryKind::Exp}, {"Log", UnaryKind::Log}, {"Tanh", UnaryKind::Tanh},
      {"Neg", UnaryKind::Neg}, {"Abs", UnaryKind::Abs}, {"Clip", UnaryKind::Clip}, {"Reciprocal", UnaryKind::Reciprocal},
      {"Floor", UnaryKind::Floor}, {"Ceil", UnaryKind::Ceil}, {"HardSigmoid", UnaryKind::HardSigmoid},
      {"HardSwish", UnaryKind::HardSwish}, {"Erf", UnaryKind::Erf}};
  for (auto& u : unaries)
    if (node.op_type == u.first) return std::make_unique<UnaryOp>(node, opset, u.second);
  if (node.op_type == "BatchNormalization") return std::make_unique<BatchNormOp>(node);
  return nullptr;
}

}  // namespace facesight
