// Ops that move data without arithmetic: the reshape family (views, no copy), Concat, Gather,
// Slice, Transpose, Expand, Cast, and the plan-time sources Shape, Constant, ConstantOfShape. Each
// runs on float32 at run time and on int64 at plan time (the shape chains PyTorch exports).
#include <cstring>

#include "engine/op.h"
#include "ops/broadcast.h"
#include "ops/layout.h"

namespace facesight {
namespace {

std::vector<int64_t> IntValues(const HostTensor& t) {
  std::vector<int64_t> v(t.size());
  for (int64_t k = 0; k < t.size(); ++k) v[k] = t.IntAt(k);
  return v;
}

// Calls f with (const T* in, T* out) for the tensor's dtype, producing a tensor of `shape`.
template <typename F>
HostTensor MapSameType(const HostTensor& in, const Shape& shape, F f) {
  HostTensor out;
  out.dtype = in.dtype;
  out.shape = shape;
  if (in.dtype == DType::Float32) { out.f.resize(NumElements(shape)); f(in.f.data(), out.f.data()); }
  else { out.i.resize(NumElements(shape)); f(in.i.data(), out.i.data()); }
  return out;
}

// ---- the reshape family: output = input memory under a new shape ----
class ViewOp : public Op {
 public:
  ViewOp(const Node& node, int64_t opset) : Op(node), opset_(opset) {}
  bool IsView() const override { return true; }
  KernelFn Build(const Inputs&, const std::vector<ValueDesc>&) const override { return nullptr; }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    HostTensor t = *in[0]->constant;
    t.shape = out[0].shape;
    return {t};
  }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    return {ValueDesc{x.dtype, OutputShape(in, x.shape), nullptr}};
  }

 private:
  std::vector<int64_t> Axes(const Inputs& in, const char* what) const {
    if (node_.Has("axes")) return node_.Ints("axes");
    if (in.size() > 1 && in[1]) return IntValues(ConstantInput(in, 1, what));
    return {};
  }

  Shape OutputShape(const Inputs& in, const Shape& x) const {
    const std::string& op = node_.op_type;
    if (op == "Identity" || op == "Dropout" || op == "Cast") return x;
    if (op == "Flatten") {
      int64_t axis = node_.Int("axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(x.size());
      if (axis < 0 || axis > static_cast<int64_t>(x.size())) ModelError("axis out of range");
      int64_t outer = 1;
      for (int64_t k = 0; k < axis; ++k) outer *= x[k];
      return {outer, NumElements(x) / std::max<int64_t>(1, outer)};
    }
    if (op == "Reshape") {
      std::vector<int64_t> target = IntValues(ConstantInput(in, 1, "the target shape"));
      const bool allow_zero = node_.Int("allowzero", 0) != 0;
      Shape out(target.size());
      int64_t known = 1, infer_at = -1;
      for (size_t k = 0; k < target.size(); ++k) {
        if (target[k] == -1) {
          if (infer_at >= 0) ModelError("more than one -1 in the target shape");
          infer_at = static_cast<int64_t>(k);
          continue;
        }
        out[k] = target[k] == 0 && !allow_zero ? (k < x.size() ? x[k] : 0) : target[k];
        if (out[k] < 0) ModelError("invalid target dim ", target[k]);
        known *= out[k];
      }
      if (infer_at >= 0) {
        if (known == 0 || NumElements(x) % known)
          Fail(ErrorCode::Input, node_.Describe(), ": cannot reshape ", ShapeToString(x), " into ", ShapeToString(target));
        out[infer_at] = NumElements(x) / known;
      }
      if (NumElements(out) != NumElements(x))
        Fail(ErrorCode::Input, node_.Describe(), ": cannot reshape ", ShapeToString(x), " into ", ShapeToString(out));
      return out;
    }
    if (op == "Squeeze") {
      std::vector<int64_t> axes = Axes(in, "Squeeze axes");
      std::vector<bool> drop(x.size(), false);
      if (axes.empty()) for (size_t k = 0; k < x.size(); ++k) drop[k] = x[k] == 1;
      for (int64_t a : axes) {
        int64_t k = NormalizeAxis(*this, a, static_cast<int64_t>(x.size()));
        if (x[k] != 1) Fail(ErrorCode::Input, node_.Describe(), ": cannot squeeze axis ", a, " of size ", x[k]);
        drop[k] = true;
      }
      Shape out;
      for (size_t k = 0; k < x.size(); ++k) if (!drop[k]) out.push_back(x[k]);
      return out;
    }
    // Unsqueeze
    std::vector<int64_t> axes = Axes(in, "Unsqueeze axes");
    const int64_t rank = static_cast<int64_t>(x.size() + axes.size());
    std::vector<bool> insert(rank, false);
    for (int64_t a : axes) insert[NormalizeAxis(*this, a, rank)] = true;
    Shape out;
    size_t src = 0;
    for (int64_t k = 0; k < rank; ++k) out.push_back(insert[k] ? 1 : x[src++]);
    return out;
  }
  int64_t opset_;
};

// ---- Cast: float stays float (a view); integer targets only at plan time ----
class CastOp : public ViewOp {
 public:
  CastOp(const Node& node, int64_t opset) : ViewOp(node, opset) { to_ = node.Int("to", 1); }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    const bool to_float = to_ == 1 || to_ == 10 || to_ == 11;
    return {ValueDesc{to_float ? DType::Float32 : DType::Int64, x.shape, nullptr}};
  }
  bool IsView() const override { return to_ == 1 || to_ == 10 || to_ == 11; }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const HostTensor& x = *in[0]->constant;
    if (out[0].dtype == DType::Float32) {
      std::vector<float> v(x.size());
      for (int64_t k = 0; k < x.size(); ++k) v[k] = static_cast<float>(x.DoubleAt(k));
      return {HostTensor::Float(x.shape, std::move(v))};
    }
    return {HostTensor::Int(x.shape, IntValues(x))};
  }
 private:
  int64_t to_;
};

// ---- Shape ----
class ShapeOp : public Op {
 public:
  using Op::Op;
  bool FoldsAlways() const override { return true; }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    return {ValueDesc{DType::Int64, {static_cast<int64_t>(Range(in).size())}, nullptr}};
  }
  KernelFn Build(const Inputs&, const std::vector<ValueDesc>&) const override { return nullptr; }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>&) const override {
    Shape r = Range(in);
    return {HostTensor::Int({static_cast<int64_t>(r.size())}, r)};
  }
 private:
  Shape Range(const Inputs& in) const {
    const Shape& x = Required(in, 0).shape;
    const int64_t rank = static_cast<int64_t>(x.size());
    int64_t start = node_.Int("start", 0), end = node_.Int("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::min(std::max<int64_t>(start, 0), rank);
    end = std::min(std::max<int64_t>(end, start), rank);
    return Shape(x.begin() + start, x.begin() + end);
  }
};

// ---- Constant / ConstantOfShape ----
class ConstantOp : public Op {
 public:
  using Op::Op;
  bool FoldsAlways() const override { return true; }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    HostTensor t = Value(in);
    return {ValueDesc{t.dtype, t.shape, nullptr}};
  }
  KernelFn Build(const Inputs&, const std::vector<ValueDesc>&) const override { return nullptr; }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>&) const override { return {Value(in)}; }

 private:
  HostTensor Value(const Inputs& in) const {
    if (node_.op_type == "ConstantOfShape") {
      std::vector<int64_t> shape = IntValues(ConstantInput(in, 0, "the shape"));
      HostTensor fill = node_.Has("value") ? node_.attrs.at("value").t : HostTensor::Float({1}, {0.f});
      if (fill.size() != 1) ModelError("value must hold one element");
      const int64_t n = NumElements(shape);
      if (fill.dtype == DType::Float32) return HostTensor::Float(shape, std::vector<float>(n, fill.f[0]));
      return HostTensor::Int(shape, std::vector<int64_t>(n, fill.i[0]));
    }
    auto it = node_.attrs.begin();
    if (node_.attrs.size() != 1) ModelError("expects exactly one value attribute");
    const Attribute& a = it->second;
    if (it->first == "value") return a.t;
    if (it->first == "value_float") return HostTensor::Float({}, {a.f});
    if (it->first == "value_floats") return HostTensor::Float({static_cast<int64_t>(a.floats.size())}, a.floats);
    if (it->first == "value_int") return HostTensor::Int({}, {a.i});
    if (it->first == "value_ints") return HostTensor::Int({static_cast<int64_t>(a.ints.size())}, a.ints);
    ModelError("attribute '", it->first, "' is not supported");
  }
};

// ---- Concat ----
class ConcatOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& first = Required(in, 0);
    const int64_t rank = static_cast<int64_t>(first.shape.size());
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), rank);
    Shape out = first.shape;
    out[axis] = 0;
    DType dtype = first.dtype;
    for (size_t k = 0; k < in.size(); ++k) {
      const ValueDesc& v = Required(in, k);
      if (static_cast<int64_t>(v.shape.size()) != rank) ModelError("inputs differ in rank");
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis && v.shape[d] != first.shape[d])
          Fail(ErrorCode::Input, node_.Describe(), ": input dims ", ShapeToString(v.shape), " and ", ShapeToString(first.shape), " differ off the concat axis");
      if (v.dtype != dtype) dtype = DType::Float32;
      out[axis] += v.shape[axis];
    }
    return {ValueDesc{dtype, out, nullptr}};
  }
  // Along channels with whole blocks, each input's per-image part is one contiguous run in NCHW16c
  // as in NCHW, so the same copies serve.
  LayoutUse Layout(const Inputs& in) const override {
    if (in.empty() || !in[0] || in[0]->shape.size() != 4 || NormalizeAxis(*this, node_.Int("axis", 0), 4) != 1)
      return LayoutUse::Nchw;
    for (const ValueDesc* v : in)
      if (!v || v->constant || v->dtype != DType::Float32 || !CanBlock(v->shape)) return LayoutUse::Nchw;
    return LayoutUse::Agnostic;
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    std::vector<Shape> shapes;
    for (auto* v : in) shapes.push_back(v->shape);
    const Shape ys = out[0].shape;
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(ys.size()));
    return [=](const float* const* inp, float* const* outp, ThreadPool*) {
      std::vector<const float*> ptrs(inp, inp + shapes.size());
      Run(ptrs, shapes, ys, axis, outp[0]);
    };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    if (out[0].dtype == DType::Float32) {
      bool all_float = true;
      for (auto* v : in) all_float = all_float && v->dtype == DType::Float32;
      if (all_float) return Op::Fold(in, out);
    }
    std::vector<std::vector<int64_t>> values;
    std::vector<const int64_t*> ptrs;
    std::vector<Shape> shapes;
    for (auto* v : in) { values.push_back(IntValues(*v->constant)); shapes.push_back(v->shape); }
    for (auto& v : values) ptrs.push_back(v.data());
    std::vector<int64_t> y(NumElements(out[0].shape));
    Run(ptrs, shapes, out[0].shape, NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(out[0].shape.size())), y.data());
    return {HostTensor::Int(out[0].shape, std::move(y))};
  }

 private:
  template <typename T>
  static void Run(const std::vector<const T*>& ptrs, const std::vector<Shape>& shapes, const Shape& ys, int64_t axis, T* y) {
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= ys[d];
    for (size_t d = axis + 1; d < ys.size(); ++d) inner *= ys[d];
    const int64_t row = ys[axis] * inner;
    int64_t offset = 0;
    for (size_t k = 0; k < ptrs.size(); ++k) {
      const int64_t chunk = shapes[k][axis] * inner;
      for (int64_t o = 0; o < outer; ++o) std::memcpy(y + o * row + offset, ptrs[k] + o * chunk, sizeof(T) * chunk);
      offset += chunk;
    }
  }
};

// ---- Gather (indices known at plan time) ----
class GatherOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    const ValueDesc& idx = Required(in, 1);
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(x.shape.size()));
    Shape out(x.shape.begin(), x.shape.begin() + axis);
    out.insert(out.end(), idx.shape.begin(), idx.shape.end());
    out.insert(out.end(), x.shape.begin() + axis + 1, x.shape.end());
    return {ValueDesc{x.dtype, out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>&) const override {
    const Shape xs = in[0]->shape;
    std::vector<int64_t> idx = Indices(in, xs);
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(xs.size()));
    return [=](const float* const* inp, float* const* outp, ThreadPool*) { Run(inp[0], xs, idx, axis, outp[0]); };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape;
    std::vector<int64_t> idx = Indices(in, xs);
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(xs.size()));
    return {MapSameType(*in[0]->constant, out[0].shape, [&](const auto* x, auto* y) { Run(x, xs, idx, axis, y); })};
  }

 private:
  std::vector<int64_t> Indices(const Inputs& in, const Shape& xs) const {
    std::vector<int64_t> idx = IntValues(ConstantInput(in, 1, "Gather indices"));
    const int64_t axis = NormalizeAxis(*this, node_.Int("axis", 0), static_cast<int64_t>(xs.size()));
    for (auto& i : idx) {
      if (i < 0) i += xs[axis];
      if (i < 0 || i >= xs[axis]) Fail(ErrorCode::Input, node_.Describe(), ": index out of range for axis of size ", xs[axis]);
    }
    return idx;
  }
  template <typename T>
  static void Run(const T* x, const Shape& xs, const std::vector<int64_t>& idx, int64_t axis, T* y) {
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= xs[d];
    for (size_t d = axis + 1; d < xs.size(); ++d) inner *= xs[d];
    for (int64_t o = 0; o < outer; ++o)
      for (size_t k = 0; k < idx.size(); ++k)
        std::memcpy(y + (o * idx.size() + k) * inner, x + (o * xs[axis] + idx[k]) * inner, sizeof(T) * inner);
  }
};

// ---- Slice (opset ≥ 10: starts/ends/axes/steps inputs; earlier: attributes) ----
class SliceOp : public Op {
 public:
  SliceOp(const Node& node, int64_t opset) : Op(node), opset_(opset) {}
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    Geometry g = Resolve(in, x.shape);
    return {ValueDesc{x.dtype, g.out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>&) const override {
    const Shape xs = in[0]->shape;
    Geometry g = Resolve(in, xs);
    return [=](const float* const* inp, float* const* outp, ThreadPool*) { Run(inp[0], xs, g, outp[0]); };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape;
    Geometry g = Resolve(in, xs);
    return {MapSameType(*in[0]->constant, out[0].shape, [&](const auto* x, auto* y) { Run(x, xs, g, y); })};
  }

 private:
  struct Geometry { Shape start, step, out; };
  Geometry Resolve(const Inputs& in, const Shape& xs) const {
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset_ < 10) {
      starts = node_.Ints("starts"); ends = node_.Ints("ends"); axes = node_.Ints("axes");
    } else {
      starts = IntValues(ConstantInput(in, 1, "Slice starts"));
      ends = IntValues(ConstantInput(in, 2, "Slice ends"));
      if (in.size() > 3 && in[3]) axes = IntValues(ConstantInput(in, 3, "Slice axes"));
      if (in.size() > 4 && in[4]) steps = IntValues(ConstantInput(in, 4, "Slice steps"));
    }
    if (axes.empty()) for (size_t k = 0; k < starts.size(); ++k) axes.push_back(static_cast<int64_t>(k));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      ModelError("starts, ends, axes and steps differ in length");
    const int64_t rank = static_cast<int64_t>(xs.size());
    Geometry g{Shape(rank, 0), Shape(rank, 1), xs};
    for (size_t k = 0; k < starts.size(); ++k) {
      const int64_t a = NormalizeAxis(*this, axes[k], rank), dim = xs[a], step = steps[k];
      if (step == 0) ModelError("step 0");
      int64_t s = starts[k], e = ends[k];
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      if (step > 0) {
        s = std::min(std::max<int64_t>(s, 0), dim);
        e = std::min(std::max<int64_t>(e, 0), dim);
        g.out[a] = e > s ? (e - s + step - 1) / step : 0;
      } else {
        s = std::min(std::max<int64_t>(s, -1), dim - 1);
        e = std::min(std::max<int64_t>(e, -1), dim - 1);
        g.out[a] = s > e ? (s - e + (-step) - 1) / (-step) : 0;
      }
      g.start[a] = s;
      g.step[a] = step;
    }
    return g;
  }
  template <typename T>
  static void Run(const T* x, const Shape& xs, const Geometry& g, T* y) {
    const size_t rank = xs.size();
    std::vector<int64_t> stride(rank, 1);
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) stride[d] = stride[d + 1] * xs[d + 1];
    const int64_t total = NumElements(g.out);
    std::vector<int64_t> idx(rank, 0);
    for (int64_t i = 0; i < total; ++i) {
      int64_t src = 0;
      for (size_t d = 0; d < rank; ++d) src += (g.start[d] + idx[d] * g.step[d]) * stride[d];
      y[i] = x[src];
      for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
        if (++idx[d] < g.out[d]) break;
        idx[d] = 0;
      }
    }
  }
  int64_t opset_;
};

// ---- Transpose ----
class TransposeOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    auto perm = Perm(x.shape.size());
    Shape out;
    for (int64_t p : perm) out.push_back(x.shape[p]);
    return {ValueDesc{x.dtype, out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>&) const override {
    const Shape xs = in[0]->shape;
    auto perm = Perm(xs.size());
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) { Run(inp[0], xs, perm, outp[0], pool); };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape;
    auto perm = Perm(xs.size());
    return {MapSameType(*in[0]->constant, out[0].shape, [&](const auto* x, auto* y) { Run(x, xs, perm, y, nullptr); })};
  }

 private:
  std::vector<int64_t> Perm(size_t rank) const {
    std::vector<int64_t> perm = node_.Ints("perm");
    if (perm.empty()) for (size_t k = 0; k < rank; ++k) perm.push_back(static_cast<int64_t>(rank - 1 - k));
    if (perm.size() != rank) ModelError("perm has ", perm.size(), " axes for rank ", rank);
    std::vector<bool> seen(rank, false);
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(rank) || seen[p]) ModelError("perm is not a permutation");
      seen[p] = true;
    }
    return perm;
  }
  // Merges axes that stay adjacent and in order; a batched 2-D transpose ([A][P][Q] → [A][Q][P], e.g.
  // NCHW → NHWC of the detection heads) then runs in cache-friendly 16×16 tiles.
  static bool AsBatched2d(const Shape& xs, const std::vector<int64_t>& perm, int64_t* A, int64_t* P, int64_t* Q) {
    std::vector<std::pair<int64_t, int64_t>> groups;  // [first input axis, last input axis] in output order
    for (size_t d = 0; d < perm.size(); ++d) {
      if (xs[perm[d]] == 1) continue;  // size-1 axes move freely
      if (!groups.empty() && groups.back().second + 1 == perm[d]) groups.back().second = perm[d];
      else groups.push_back({perm[d], perm[d]});
    }
    auto size = [&](std::pair<int64_t, int64_t> g) {
      int64_t n = 1;
      for (int64_t a = g.first; a <= g.second; ++a) n *= xs[a];
      return n;
    };
    if (groups.size() == 2 && groups[0].first > groups[1].first) {
      *A = 1; *P = size(groups[1]); *Q = size(groups[0]);
      return true;
    }
    if (groups.size() == 3 && groups[0].first < groups[2].first && groups[2].first < groups[1].first) {
      *A = size(groups[0]); *P = size(groups[2]); *Q = size(groups[1]);
      return true;
    }
    return false;
  }

  template <typename T>
  static void Run(const T* x, const Shape& xs, const std::vector<int64_t>& perm, T* y, ThreadPool* pool) {
    int64_t A, P, Q;
    if (AsBatched2d(xs, perm, &A, &P, &Q)) {
      constexpr int64_t kTile = 16;
      const int64_t tp = (P + kTile - 1) / kTile, tq = (Q + kTile - 1) / kTile;
      ParallelFor(pool, A * tp * tq, 16, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t a = t / (tp * tq), p0 = (t / tq) % tp * kTile, q0 = t % tq * kTile;
          const T* xa = x + a * P * Q;
          T* ya = y + a * P * Q;
          for (int64_t q = q0; q < std::min(Q, q0 + kTile); ++q)
            for (int64_t p = p0; p < std::min(P, p0 + kTile); ++p) ya[q * P + p] = xa[p * Q + q];
        }
      });
      return;
    }
    RunGeneral(x, xs, perm, y, pool);
  }

  template <typename T>
  static void RunGeneral(const T* x, const Shape& xs, const std::vector<int64_t>& perm, T* y, ThreadPool* pool) {
    const size_t rank = xs.size();
    std::vector<int64_t> in_stride(rank, 1), out_shape(rank), src_stride(rank);
    for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) in_stride[d] = in_stride[d + 1] * xs[d + 1];
    for (size_t d = 0; d < rank; ++d) { out_shape[d] = xs[perm[d]]; src_stride[d] = in_stride[perm[d]]; }
    const int64_t total = NumElements(xs);
    if (total == 0) return;
    const int64_t inner = out_shape[rank - 1], rows = total / inner;
    // Rows of the output's last axis; each row reads with one stride (NCHW → NHWC reads channels).
    ParallelFor(pool, rows, 64, [&](int64_t r0, int64_t r1) {
      std::vector<int64_t> idx(rank, 0);
      int64_t rem = r0;
      for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) { idx[d] = rem % out_shape[d]; rem /= out_shape[d]; }
      for (int64_t r = r0; r < r1; ++r) {
        int64_t src = 0;
        for (size_t d = 0; d + 1 < rank; ++d) src += idx[d] * src_stride[d];
        const int64_t s = src_stride[rank - 1];
        T* yr = y + r * inner;
        for (int64_t j = 0; j < inner; ++j) yr[j] = x[src + j * s];
        for (int64_t d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
          if (++idx[d] < out_shape[d]) break;
          idx[d] = 0;
        }
      }
    });
  }
};

// ---- Expand ----
class ExpandOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    std::vector<int64_t> target = IntValues(ConstantInput(in, 1, "the target shape"));
    Shape out;
    if (!BroadcastShape(x.shape, target, &out))
      Fail(ErrorCode::Input, node_.Describe(), ": cannot expand ", ShapeToString(x.shape), " to ", ShapeToString(target));
    return {ValueDesc{x.dtype, out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape, ys = out[0].shape;
    return [=](const float* const* inp, float* const* outp, ThreadPool*) {
      BroadcastBinary(inp[0], xs, inp[0], xs, outp[0], ys, [](float a, float) { return a; });
    };
  }
  std::vector<HostTensor> Fold(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape, ys = out[0].shape;
    return {MapSameType(*in[0]->constant, ys, [&](const auto* x, auto* y) {
      BroadcastBinary(x, xs, x, xs, y, ys, [](auto a, auto) { return a; });
    })};
  }
};

}  // namespace

std::unique_ptr<Op> MakeShapeOp(const Node& node, int64_t opset) {
  const std::string& t = node.op_type;
  if (t == "Reshape" || t == "Flatten" || t == "Squeeze" || t == "Unsqueeze" || t == "Identity" || t == "Dropout")
    return std::make_unique<ViewOp>(node, opset);
  if (t == "Cast") return std::make_unique<CastOp>(node, opset);
  if (t == "Shape") return std::make_unique<ShapeOp>(node);
  if (t == "Constant" || t == "ConstantOfShape") return std::make_unique<ConstantOp>(node);
  if (t == "Concat") return std::make_unique<ConcatOp>(node);
  if (t == "Gather") return std::make_unique<GatherOp>(node);
  if (t == "Slice") return std::make_unique<SliceOp>(node, opset);
  if (t == "Transpose") return std::make_unique<TransposeOp>(node);
  if (t == "Expand") return std::make_unique<ExpandOp>(node);
  return nullptr;
}

}  // namespace facesight
