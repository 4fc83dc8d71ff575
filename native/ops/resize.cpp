// Resize (opset ≥ 10 / 11+) and Upsample (opset 7–9) on 4-D NCHW: nearest and (bi)linear, with every
// coordinate_transformation_mode and nearest_mode ONNX defines except tf_crop_and_resize.
#include <cmath>

#include "engine/op.h"
#include "ops/layout.h"

namespace facesight {
namespace {

enum class Coord { HalfPixel, PytorchHalfPixel, AlignCorners, Asymmetric, HalfPixelSymmetric };
enum class Rounding { RoundPreferFloor, RoundPreferCeil, Floor, Ceil };

class ResizeOp : public Op {
 public:
  ResizeOp(const Node& node, int64_t opset) : Op(node), opset_(opset) {
    const std::string mode = node.Str("mode", "nearest");
    if (mode == "nearest") linear_ = false;
    else if (mode == "linear" || mode == "bilinear") linear_ = true;
    else ModelError("mode '", mode, "' is not supported (nearest, linear)");
    const std::string ct = node.Str("coordinate_transformation_mode", opset >= 11 ? "half_pixel" : "asymmetric");
    if (ct == "half_pixel") coord_ = Coord::HalfPixel;
    else if (ct == "pytorch_half_pixel") coord_ = Coord::PytorchHalfPixel;
    else if (ct == "align_corners") coord_ = Coord::AlignCorners;
    else if (ct == "asymmetric") coord_ = Coord::Asymmetric;
    else if (ct == "half_pixel_symmetric") coord_ = Coord::HalfPixelSymmetric;
    else ModelError("coordinate_transformation_mode '", ct, "' is not supported");
    const std::string nm = node.Str("nearest_mode", "round_prefer_floor");
    if (nm == "round_prefer_floor") rounding_ = Rounding::RoundPreferFloor;
    else if (nm == "round_prefer_ceil") rounding_ = Rounding::RoundPreferCeil;
    else if (nm == "floor") rounding_ = Rounding::Floor;
    else if (nm == "ceil") rounding_ = Rounding::Ceil;
    else ModelError("nearest_mode '", nm, "' is not supported");
    if (opset < 10 || node.op_type == "Upsample") coord_ = Coord::Asymmetric, rounding_ = Rounding::Floor;
    if (node.Has("axes")) ModelError("the axes attribute is not supported");
    if (node.Str("keep_aspect_ratio_policy", "stretch") != "stretch") ModelError("keep_aspect_ratio_policy is not supported");
  }

  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const Shape& x = Required(in, 0).shape;
    if (x.size() != 4) ModelError("only 4-D NCHW input is supported; got ", ShapeToString(x));
    Sizes s = Resolve(in, x);
    return {ValueDesc{DType::Float32, {x[0], x[1], s.out_h, s.out_w}, nullptr}};
  }

  LayoutUse Layout(const Inputs&) const override { return LayoutUse::ReadsEither; }

  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape x = in[0]->shape;
    const Sizes s = Resolve(in, x);
    const int64_t NC = x[0] * x[1], H = x[2], W = x[3], OH = s.out_h, OW = s.out_w;
    // Per output row/column: source index (nearest) or two indices and a weight (linear).
    struct Tap { int64_t i0, i1; float w1; };
    auto taps = [&](int64_t in_size, int64_t out_size, float scale) {
      std::vector<Tap> t(out_size);
      for (int64_t o = 0; o < out_size; ++o) {
        double src = SourceCoord(o, in_size, out_size, scale);
        if (!linear_) {
          int64_t i = Round(src);
          i = std::min(std::max<int64_t>(i, 0), in_size - 1);
          t[o] = {i, i, 0.f};
        } else {
          src = std::min(std::max(src, 0.0), static_cast<double>(in_size - 1));
          int64_t i0 = static_cast<int64_t>(std::floor(src));
          int64_t i1 = std::min(i0 + 1, in_size - 1);
          t[o] = {i0, i1, static_cast<float>(src - i0)};
        }
      }
      return t;
    };
    const std::vector<Tap> rows = taps(H, OH, s.scale_h), cols = taps(W, OW, s.scale_w);
    const bool linear = linear_;
    if (in[0]->blocked) {
      // NCHW16c (the output is too: same channels): the NCHW loop with a pixel's 16 channels innermost.
      // A 1×1 output is the same memory in both layouts.
      constexpr int64_t B = kChannelBlock;
      const int64_t planes = NC / B;
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        ParallelFor(pool, planes * OH, 8, [&](int64_t b, int64_t e) {
          for (int64_t r = b; r < e; ++r) {
            const int64_t cb = r / OH, oh = r % OH;
            const float* plane = inp[0] + cb * H * W * B;
            float* y = outp[0] + r * OW * B;
            const Tap& tr = rows[oh];
            const float* r0 = plane + tr.i0 * W * B;
            const float* r1 = plane + tr.i1 * W * B;
            for (int64_t ow = 0; ow < OW; ++ow) {
              const Tap& tc = cols[ow];
              float* yo = y + ow * B;
              if (!linear) {
                for (int64_t j = 0; j < B; ++j) yo[j] = r0[tc.i0 * B + j];
                continue;
              }
              for (int64_t j = 0; j < B; ++j) {
                const float a0 = r0[tc.i0 * B + j], a1 = r0[tc.i1 * B + j];
                const float b0 = r1[tc.i0 * B + j], b1 = r1[tc.i1 * B + j];
                const float top = a0 + (a1 - a0) * tc.w1, bottom = b0 + (b1 - b0) * tc.w1;
                yo[j] = top + (bottom - top) * tr.w1;
              }
            }
          }
        });
      };
    }
    (void)out;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, NC * OH, 32, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
          const int64_t c = r / OH, oh = r % OH;
          const float* plane = inp[0] + c * H * W;
          float* y = outp[0] + r * OW;
          const Tap& tr = rows[oh];
          const float* r0 = plane + tr.i0 * W;
          if (!linear) {
            for (int64_t ow = 0; ow < OW; ++ow) y[ow] = r0[cols[ow].i0];
          } else {
            const float* r1 = plane + tr.i1 * W;
            for (int64_t ow = 0; ow < OW; ++ow) {
              const Tap& tc = cols[ow];
              const float top = r0[tc.i0] + (r0[tc.i1] - r0[tc.i0]) * tc.w1;
              const float bottom = r1[tc.i0] + (r1[tc.i1] - r1[tc.i0]) * tc.w1;
              y[ow] = top + (bottom - top) * tr.w1;
            }
          }
        }
      });
    };
  }

 private:
  struct Sizes { int64_t out_h, out_w; float scale_h, scale_w; };

  Sizes Resolve(const Inputs& in, const Shape& x) const {
    std::vector<double> scales;
    std::vector<int64_t> sizes;
    if (node_.op_type == "Upsample" && opset_ < 9) {
      for (float f : node_.attrs.count("scales") ? node_.attrs.at("scales").floats : std::vector<float>{}) scales.push_back(f);
    } else if (node_.op_type == "Upsample" || opset_ < 11) {
      const HostTensor& t = ConstantInput(in, 1, "scales");
      for (int64_t k = 0; k < t.size(); ++k) scales.push_back(t.DoubleAt(k));
    } else {
      if (in.size() > 3 && in[3] && NumElements(in[3]->shape) > 0) {
        const HostTensor& t = ConstantInput(in, 3, "sizes");
        for (int64_t k = 0; k < t.size(); ++k) sizes.push_back(t.IntAt(k));
      } else if (in.size() > 2 && in[2] && NumElements(in[2]->shape) > 0) {
        const HostTensor& t = ConstantInput(in, 2, "scales");
        for (int64_t k = 0; k < t.size(); ++k) scales.push_back(t.DoubleAt(k));
      } else {
        ModelError("needs scales or sizes");
      }
    }
    Sizes s;
    if (!sizes.empty()) {
      if (sizes.size() != 4 || sizes[0] != x[0] || sizes[1] != x[1]) ModelError("only H and W may be resized");
      s.out_h = sizes[2];
      s.out_w = sizes[3];
      s.scale_h = static_cast<float>(s.out_h) / static_cast<float>(x[2]);
      s.scale_w = static_cast<float>(s.out_w) / static_cast<float>(x[3]);
    } else {
      if (scales.size() != 4 || scales[0] != 1.0 || scales[1] != 1.0) ModelError("only H and W may be resized (scales must be [1, 1, sh, sw])");
      if (!(scales[2] > 0 && scales[3] > 0)) ModelError("scales must be positive");
      s.scale_h = static_cast<float>(scales[2]);
      s.scale_w = static_cast<float>(scales[3]);
      s.out_h = static_cast<int64_t>(std::floor(x[2] * scales[2]));
      s.out_w = static_cast<int64_t>(std::floor(x[3] * scales[3]));
    }
    if (s.out_h <= 0 || s.out_w <= 0) Fail(ErrorCode::Input, node_.Describe(), ": output size would be empty");
    return s;
  }

  // In float32, as onnxruntime computes it: exact ties (e.g. 6 → 4 columns) must stay exact.
  double SourceCoord(int64_t o, int64_t in_size, int64_t out_size, float scale) const {
    const float x = static_cast<float>(o);
    switch (coord_) {
      case Coord::HalfPixel: return (x + 0.5f) / scale - 0.5f;
      case Coord::PytorchHalfPixel: return out_size > 1 ? (x + 0.5f) / scale - 0.5f : 0.f;
      case Coord::AlignCorners:
        return out_size > 1 ? x * static_cast<float>(in_size - 1) / static_cast<float>(out_size - 1) : 0.f;
      case Coord::HalfPixelSymmetric: {
        const float adjustment = static_cast<float>(out_size) / (scale * static_cast<float>(in_size));
        const float center = static_cast<float>(in_size) / 2.f;
        const float offset = center * (1.f - adjustment);
        return offset + (x + 0.5f) / scale - 0.5f;
      }
      default: return x / scale;
    }
  }

  int64_t Round(double v) const {
    switch (rounding_) {
      case Rounding::Floor: return static_cast<int64_t>(std::floor(v));
      case Rounding::Ceil: return static_cast<int64_t>(std::ceil(v));
      case Rounding::RoundPreferCeil: return static_cast<int64_t>(std::floor(v + 0.5));
      default: return static_cast<int64_t>(std::ceil(v - 0.5));
    }
  }

  int64_t opset_;
  bool linear_ = false;
  Coord coord_ = Coord::HalfPixel;
  Rounding rounding_ = Rounding::RoundPreferFloor;
};

}  // namespace

std::unique_ptr<Op> MakeResize(const Node& node, int64_t opset) {
  if (node.op_type == "Resize" || node.op_type == "Upsample") return std::make_unique<ResizeOp>(node, opset);
  return nullptr;
}

}  // namespace facesight
