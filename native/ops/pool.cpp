// MaxPool, AveragePool (2-D, NCHW, pads / auto_pad / ceil_mode / count_include_pad), and the global
// poolings.
#include <algorithm>
#include <limits>

#include "engine/op.h"
#include "ops/layout.h"
#include "ops/pool_geometry.h"

namespace facesight {
namespace {

class PoolOp : public Op {
 public:
  PoolOp(const Node& node, int64_t) : Op(node) {
    global_ = node.op_type.rfind("Global", 0) == 0;
    max_ = node.op_type.find("Max") != std::string::npos;
    if (!global_) {
      kernel_ = node.Ints("kernel_shape");
      if (kernel_.size() != 2) ModelError("only 2-D pooling is supported (kernel_shape must have 2 values)");
    }
  }
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const Shape& x = Required(in, 0).shape;
    if (x.size() != 4) ModelError("only 4-D NCHW input is supported; got ", ShapeToString(x));
    if (global_) return {ValueDesc{DType::Float32, {x[0], x[1], 1, 1}, nullptr}};
    Window2d g = Geometry(x);
    return {ValueDesc{DType::Float32, {x[0], x[1], g.out_h, g.out_w}, nullptr}};
  }
  // Pools read each plane through its start and pixel stride, so NCHW16c input needs no reorder.
  LayoutUse Layout(const Inputs&) const override { return LayoutUse::ReadsEither; }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape x = in[0]->shape;
    const int64_t NC = x[0] * x[1], C = x[1], H = x[2], W = x[3];
    const bool is_max = max_;
    const bool x_blocked = in[0]->blocked, y_blocked = out[0].blocked;
    const int64_t xs = PixelStride(x_blocked), ys = PixelStride(y_blocked);
    if (global_ && x_blocked) {
      // One channel block at a time: its 16 lanes are contiguous per pixel, so the sums vectorise.
      constexpr int64_t B = kChannelBlock;
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        ParallelFor(pool, NC / B, 1, [&](int64_t b, int64_t e) {
          for (int64_t block = b; block < e; ++block) {
            const float* p = inp[0] + block * H * W * B;
            float acc[B];
            std::fill_n(acc, B, is_max ? -std::numeric_limits<float>::infinity() : 0.f);
            for (int64_t i = 0; i < H * W; ++i)
              for (int64_t j = 0; j < B; ++j) acc[j] = is_max ? std::max(acc[j], p[i * B + j]) : acc[j] + p[i * B + j];
            for (int64_t j = 0; j < B; ++j) outp[0][block * B + j] = is_max ? acc[j] : acc[j] / static_cast<float>(H * W);
          }
        });
      };
    }
    if (global_) {
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        ParallelFor(pool, NC, 16, [&](int64_t b, int64_t e) {
          for (int64_t c = b; c < e; ++c) {
            const float* p = inp[0] + PlaneStart(c, C, H * W, x_blocked);
            float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
            for (int64_t i = 0; i < H * W; ++i) acc = is_max ? std::max(acc, p[i * xs]) : acc + p[i * xs];
            outp[0][c] = is_max ? acc : acc / static_cast<float>(H * W);
          }
        });
      };
    }
    const Window2d g = Geometry(x);
    const bool include_pad = node_.Int("count_include_pad", 0) != 0;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, NC, 1, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
          const float* p = inp[0] + PlaneStart(c, C, H * W, x_blocked);
          float* y = outp[0] + PlaneStart(c, C, g.out_h * g.out_w, y_blocked);
          for (int64_t oh = 0; oh < g.out_h; ++oh)
            for (int64_t ow = 0; ow < g.out_w; ++ow) {
              const int64_t h0 = oh * g.stride_h - g.pad_top, w0 = ow * g.stride_w - g.pad_left;
              float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.f;
              int64_t count = 0;
              for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
                const int64_t ih = h0 + kh * g.dilation_h;
                for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                  const int64_t iw = w0 + kw * g.dilation_w;
                  // count_include_pad counts explicit padding, never the ceil_mode overhang.
                  const bool in_padded = ih < H + g.pad_bottom && iw < W + g.pad_right;
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                    if (include_pad && in_padded) ++count;
                    continue;
                  }
                  const float v = p[(ih * W + iw) * xs];
                  acc = is_max ? std::max(acc, v) : acc + v;
                  ++count;
                }
              }
              y[(oh * g.out_w + ow) * ys] = is_max ? acc : (count ? acc / static_cast<float>(count) : 0.f);
            }
        }
      });
    };
  }

 private:
  Window2d Geometry(const Shape& x) const {
    return ResolveWindow2d(*this, x[2], x[3], kernel_[0], kernel_[1], node_.Int("ceil_mode", 0) != 0);
  }
  bool global_ = false, max_ = false;
  std::vector<int64_t> kernel_;
};

}  // namespace

std::unique_ptr<Op> MakePool(const Node& node, int64_t opset) {
  const std::string& t = node.op_type;
  if (t == "MaxPool" || t == "AveragePool" || t == "GlobalAveragePool" || t == "GlobalMaxPool") {
    if (t == "MaxPool" && node.outputs.size() > 1 && !node.outputs[1].empty())
      Fail(ErrorCode::Model, node.Describe(), ": the Indices output of MaxPool is not supported");
    return std::make_unique<PoolOp>(node, opset);
  }
  return nullptr;
}

}  // namespace facesight
