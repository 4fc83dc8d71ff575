// Softmax / LogSoftmax (opset < 13: flattened at axis; ≥ 13: along one axis) and the reductions
// used for L2 normalisation: ReduceSum, ReduceL2, ReduceMean, ReduceMax, ReduceSumSquare.
#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/op.h"

namespace facesight {
namespace {

class SoftmaxOp : public Op {
 public:
  SoftmaxOp(const Node& node, int64_t opset) : Op(node), opset_(opset), log_(node.op_type == "LogSoftmax") {}
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    NormalizeAxis(*this, node_.Int("axis", opset_ >= 13 ? -1 : 1), static_cast<int64_t>(x.shape.size()));
    return {ValueDesc{DType::Float32, x.shape, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>&) const override {
    const Shape x = in[0]->shape;
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", opset_ >= 13 ? -1 : 1), static_cast<int64_t>(x.size()));
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t d = 0; d < static_cast<int64_t>(x.size()); ++d) {
      if (d < axis) outer *= x[d];
      else if (opset_ < 13 || d == axis) n *= x[d];  // opset < 13 coerces to 2-D at axis
      else inner *= x[d];
    }
    const bool log = log_;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, outer * inner, 256, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t o = r / inner, i = r % inner;
          const float* xp = inp[0] + o * n * inner + i;
          float* yp = outp[0] + o * n * inner + i;
          float mx = -std::numeric_limits<float>::infinity();
          for (int64_t k = 0; k < n; ++k) mx = std::max(mx, xp[k * inner]);
          float sum = 0.f;
          for (int64_t k = 0; k < n; ++k) { float v = std::exp(xp[k * inner] - mx); yp[k * inner] = v; sum += v; }
          if (log) { const float ls = std::log(sum); for (int64_t k = 0; k < n; ++k) yp[k * inner] = xp[k * inner] - mx - ls; }
          else { const float inv = 1.f / sum; for (int64_t k = 0; k < n; ++k) yp[k * inner] *= inv; }
        }
      });
    };
  }
 private:
  int64_t opset_;
  bool log_;
};

enum class ReduceKind { Sum, L2, Mean, Max, SumSquare };

class ReduceOp : public Op {
 public:
  ReduceOp(const Node& node, int64_t, ReduceKind kind) : Op(node), kind_(kind) {}
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    auto keep = Axes(in, x.shape);
    Shape out;
    const bool keepdims = node_.Int("keepdims", 1) != 0;
    for (size_t d = 0; d < x.shape.size(); ++d) {
      if (!keep[d]) out.push_back(x.shape[d]);
      else if (keepdims) out.push_back(1);
    }
    return {ValueDesc{DType::Float32, out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape x = in[0]->shape;
    const std::vector<bool> reduced = Axes(in, x);
    const ReduceKind kind = kind_;
    const int64_t total = NumElements(x), out_n = NumElements(out[0].shape);
    // Map each input index to its output index through the strides of the kept axes.
    std::vector<int64_t> out_stride(x.size(), 0);
    int64_t s = 1;
    for (int64_t d = static_cast<int64_t>(x.size()) - 1; d >= 0; --d)
      if (!reduced[d]) { out_stride[d] = s; s *= x[d]; }
    return [=](const float* const* inp, float* const* outp, ThreadPool*) {
      std::vector<double> acc(out_n, kind == ReduceKind::Max ? -INFINITY : 0.0);
      std::vector<int64_t> idx(x.size(), 0);
      for (int64_t i = 0; i < total; ++i) {
        int64_t o = 0;
        for (size_t d = 0; d < x.size(); ++d) o += idx[d] * out_stride[d];
        const double v = inp[0][i];
        if (kind == ReduceKind::Max) acc[o] = std::max(acc[o], v);
        else if (kind == ReduceKind::L2 || kind == ReduceKind::SumSquare) acc[o] += v * v;
        else acc[o] += v;
        for (int64_t d = static_cast<int64_t>(x.size()) - 1; d >= 0; --d) {
          if (++idx[d] < x[d]) break;
          idx[d] = 0;
        }
      }
      const double count = out_n ? static_cast<double>(total) / out_n : 1.0;
      for (int64_t o = 0; o < out_n; ++o)
        outp[0][o] = static_cast<float>(kind == ReduceKind::L2 ? std::sqrt(acc[o]) : kind == ReduceKind::Mean ? acc[o] / count : acc[o]);
    };
  }
 private:
  std::vector<bool> Axes(const Inputs& in, const Shape& x) const {
    std::vector<int64_t> axes = node_.Ints("axes");
    if (in.size() > 1 && in[1]) {
      const HostTensor& t = ConstantInput(in, 1, "axes");
      axes.clear();
      for (int64_t k = 0; k < t.size(); ++k) axes.push_back(t.IntAt(k));
    }
    std::vector<bool> reduced(x.size(), false);
    if (axes.empty()) {
      const bool noop = node_.Int("noop_with_empty_axes", 0) != 0;
      if (!noop) reduced.assign(x.size(), true);
    }
    for (int64_t a : axes) reduced[NormalizeAxis(*this, a, static_cast<int64_t>(x.size()))] = true;
    return reduced;
  }
  ReduceKind kind_;
};

}  // namespace

std::unique_ptr<Op> MakeSoftmaxReduce(const Node& node, int64_t opset) {
  const std::string& t = node.op_type;
  if (t == "Softmax" || t == "LogSoftmax") return std::make_unique<SoftmaxOp>(node, opset);
  if (t == "ReduceSum") return std::make_unique<ReduceOp>(node, opset, ReduceKind::Sum);
  if (t == "ReduceL2") return std::make_unique<ReduceOp>(node, opset, ReduceKind::L2);
  if (t == "ReduceMean") return std::make_unique<ReduceOp>(node, opset, ReduceKind::Mean);
  if (t == "ReduceMax") return std::make_unique<ReduceOp>(node, opset, ReduceKind::Max);
  if (t == "ReduceSumSquare") return std::make_unique<ReduceOp>(node, opset, ReduceKind::SumSquare);
  return nullptr;
}

}  // namespace facesight
