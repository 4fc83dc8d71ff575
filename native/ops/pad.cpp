// Pad: constant, reflect and edge modes on any rank; pads from the input (opset ≥ 11) or attribute.
#include <algorithm>

#include "engine/op.h"

namespace facesight {
namespace {

class PadOp : public Op {
 public:
  PadOp(const Node& node, int64_t opset) : Op(node), opset_(opset) {
    mode_ = node.Str("mode", "constant");
    if (mode_ != "constant" && mode_ != "reflect" && mode_ != "edge") ModelError("mode '", mode_, "' is not supported");
  }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const ValueDesc& x = Required(in, 0);
    auto pads = Pads(in, x.shape.size());
    Shape out = x.shape;
    const size_t r = x.shape.size();
    for (size_t d = 0; d < r; ++d) {
      out[d] += pads[d] + pads[d + r];
      if (out[d] < 0) Fail(ErrorCode::Input, node_.Describe(), ": pads make axis ", d, " negative");
      if (mode_ == "reflect" && (pads[d] >= x.shape[d] || pads[d + r] >= x.shape[d]) && (pads[d] || pads[d + r]))
        Fail(ErrorCode::Input, node_.Describe(), ": reflect pads must be smaller than the axis (", x.shape[d], ")");
    }
    return {ValueDesc{DType::Float32, out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape xs = in[0]->shape, ys = out[0].shape;
    const auto pads = Pads(in, xs.size());
    float value = node_.Float("value", 0.f);
    if (opset_ >= 11 && in.size() > 2 && in[2] && NumElements(in[2]->shape) > 0) value = static_cast<float>(ConstantInput(in, 2, "constant_value").DoubleAt(0));
    const int mode = mode_ == "constant" ? 0 : mode_ == "reflect" ? 1 : 2;
    return [=](const float* const* inp, float* const* outp, ThreadPool*) {
      const size_t r = xs.size();
      std::vector<int64_t> xstride(r, 1), idx(r, 0);
      for (int64_t d = static_cast<int64_t>(r) - 2; d >= 0; --d) xstride[d] = xstride[d + 1] * xs[d + 1];
      const int64_t total = NumElements(ys);
      for (int64_t i = 0; i < total; ++i) {
        int64_t src = 0;
        bool inside = true;
        for (size_t d = 0; d < r; ++d) {
          int64_t s = idx[d] - pads[d];
          if (s < 0 || s >= xs[d]) {
            if (mode == 0) { inside = false; break; }
            if (mode == 1) { while (s < 0 || s >= xs[d]) s = s < 0 ? -s : 2 * (xs[d] - 1) - s; }
            else s = std::min(std::max<int64_t>(s, 0), xs[d] - 1);
          }
          src += s * xstride[d];
        }
        outp[0][i] = inside ? inp[0][src] : value;
        for (int64_t d = static_cast<int64_t>(r) - 1; d >= 0; --d) {
          if (++idx[d] < ys[d]) break;
          idx[d] = 0;
        }
      }
    };
  }
 private:
  std::vector<int64_t> Pads(const Inputs& in, size_t rank) const {
    std::vector<int64_t> pads;
    if (opset_ < 11) pads = node_.Ints("pads");
    else {
      const HostTensor& t = ConstantInput(in, 1, "pads");
      for (int64_t k = 0; k < t.size(); ++k) pads.push_back(t.IntAt(k));
      if (in.size() > 3 && in[3]) {  // opset 18: pads name only these axes
        const HostTensor& axes = ConstantInput(in, 3, "axes");
        if (pads.size() != 2 * static_cast<size_t>(axes.size())) ModelError("pads has ", pads.size(), " values for ", axes.size(), " axes");
        std::vector<int64_t> full(2 * rank, 0);
        for (int64_t k = 0; k < axes.size(); ++k) {
          const int64_t a = NormalizeAxis(*this, axes.IntAt(k), static_cast<int64_t>(rank));
          full[a] = pads[k];
          full[a + rank] = pads[k + axes.size()];
        }
        pads = std::move(full);
      }
    }
    if (pads.size() != 2 * rank) ModelError("pads has ", pads.size(), " values for rank ", rank);
    return pads;
  }
  int64_t opset_;
  std::string mode_;
};

}  // namespace

std::unique_ptr<Op> MakePad(const Node& node, int64_t opset) {
  if (node.op_type == "Pad") return std::make_unique<PadOp>(node, opset);
  return nullptr;
}

}  // namespace facesight
