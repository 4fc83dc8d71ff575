// Conv (2-D, NCHW): any kernel, stride, padding (explicit or auto_pad), dilation and group. Three
// paths: 3×3 depthwise (SIMD direct kernel), 1×1 stride-1 (GEMM reading the image in place), and the
// general case (GEMM with implicit im2col). Bias and a fused activation are applied in the store.
#include <algorithm>
#include <cmath>

#include "engine/graph_passes.h"
#include "engine/op.h"
#include "ops/gemm.h"
#include "ops/kernels.h"
#include "ops/pool_geometry.h"

namespace facesight {
namespace {

class ConvOp : public Op {
 public:
  ConvOp(const Node& node, int64_t) : Op(node) {
    group_ = node.Int("group", 1);
    if (group_ < 1) ModelError("group must be ≥ 1");
    const std::string act = node.Str(kFusedActivation, "");
    if (act == "Relu") act_.kind = ActKind::Relu;
    else if (act == "LeakyRelu") { act_.kind = ActKind::Leaky; act_.alpha = node.Float(kFusedAlpha, 0.01f); }
    else if (act == "Clip") { act_.kind = ActKind::Clip; act_.alpha = node.Float(kFusedAlpha, -INFINITY); act_.beta = node.Float(kFusedBeta, INFINITY); }
    else if (act == "PRelu") act_.kind = ActKind::PRelu;
  }

  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const Shape& x = Required(in, 0).shape;
    const Shape& w = Required(in, 1).shape;
    if (x.size() != 4) ModelError("only 2-D convolution (4-D NCHW input) is supported; got input dims ", ShapeToString(x));
    if (w.size() != 4) ModelError("weight must be 4-D, got ", ShapeToString(w));
    if (x[1] != w[1] * group_)
      Fail(ErrorCode::Input, node_.Describe(), ": expected ", w[1] * group_, " input channels but received dims ", ShapeToString(x));
    if (w[0] % group_) ModelError("output channels ", w[0], " not divisible by group ", group_);
    if (in.size() > 2 && in[2] && NumElements(in[2]->shape) != w[0]) ModelError("bias has ", NumElements(in[2]->shape), " values for ", w[0], " channels");
    Window2d g = Geometry(x, w);
    return {ValueDesc{DType::Float32, {x[0], w[0], g.out_h, g.out_w}, nullptr}};
  }

  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape x = in[0]->shape, w = in[1]->shape;
    const Window2d g = Geometry(x, w);
    const int64_t N = x[0], C = x[1], H = x[2], W = x[3];
    const int64_t M = w[0], KH = w[2], KW = w[3];
    const int64_t OH = g.out_h, OW = g.out_w;
    const int64_t cin_g = C / group_, cout_g = M / group_;
    const HostTensor* wc = in[1]->constant;
    const HostTensor* bc = in.size() > 2 && in[2] ? in[2]->constant : nullptr;
    const HostTensor* sc = in.size() > 3 && in[3] ? in[3]->constant : nullptr;
    const bool has_bias = in.size() > 2 && in[2];
    const Activation act = act_;
    (void)out;

    // Depthwise 3×3, stride 1 or 2, no dilation: direct SIMD kernel over channels.
    if (group_ == C && M == C && KH == 3 && KW == 3 && g.stride_h == g.stride_w && g.stride_h <= 2 &&
        g.dilation_h == 1 && g.dilation_w == 1 && wc && (!has_bias || bc)) {
      auto weights = std::make_shared<std::vector<float>>(wc->f);
      auto bias = std::make_shared<std::vector<float>>(bc ? bc->f : std::vector<float>(C, 0.f));
      auto slope = std::make_shared<std::vector<float>>(sc ? sc->f : std::vector<float>());
      const int stride = static_cast<int>(g.stride_h);
      const int pad_top = static_cast<int>(g.pad_top), pad_left = static_cast<int>(g.pad_left);
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        const SimdKernels& k = Kernels();
        const int64_t scratch = k.depthwise3x3_scratch(H, W, OH, OW, stride);
        ParallelFor(pool, N * C, 1, [&](int64_t b, int64_t e) {
          thread_local std::vector<float> buffer;
          if (static_cast<int64_t>(buffer.size()) < scratch) buffer.resize(scratch);
          for (int64_t nc = b; nc < e;) {
            const int64_t n = nc / C, c0 = nc % C, c1 = std::min(C, c0 + (e - nc));
            Depthwise3x3Args a{inp[0] + n * C * H * W, outp[0] + n * C * OH * OW, weights->data(), bias->data(),
                               slope->empty() ? nullptr : slope->data(), act, H, W, OH, OW, stride, pad_top, pad_left};
            k.depthwise3x3(a, c0, c1, buffer.data());
            nc += c1 - c0;
          }
        });
      };
    }

    // GEMM paths: per group, C_out[g] = W[g] · im2col(x[g]). Weights packed once here.
    const int64_t K = cin_g * KH * KW;
    const int64_t mr = Kernels().mr;
    auto packed = std::make_shared<std::vector<std::vector<float>>>();
    if (wc) {
      for (int64_t gi = 0; gi < group_; ++gi)
        packed->push_back(PackGemmA(wc->f.data() + gi * cout_g * K, cout_g, K, K, false));
    }
    auto pad_per_group = [&](const HostTensor* t) {
      auto v = std::make_shared<std::vector<std::vector<float>>>();
      for (int64_t gi = 0; gi < group_; ++gi) v->push_back(PadVector(t ? t->f.data() + gi * cout_g : nullptr, cout_g, mr));
      return v;
    };
    auto bias = pad_per_group(bc);
    auto slope = pad_per_group(sc);
    const bool pointwise = KH == 1 && KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
                           g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0;
    const int64_t group = group_;
    const bool runtime_bias = has_bias && !bc;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      std::vector<std::vector<float>> runtime_packed;
      std::vector<std::vector<float>> runtime_bias_v;
      const std::vector<std::vector<float>>* a = packed.get();
      const std::vector<std::vector<float>>* bv = bias.get();
      if (a->empty()) {  // weights computed at run time (rare): pack per run
        for (int64_t gi = 0; gi < group; ++gi) runtime_packed.push_back(PackGemmA(inp[1] + gi * cout_g * K, cout_g, K, K, false));
        a = &runtime_packed;
      }
      if (runtime_bias) {
        for (int64_t gi = 0; gi < group; ++gi) runtime_bias_v.push_back(PadVector(inp[2] + gi * cout_g, cout_g, mr));
        bv = &runtime_bias_v;
      }
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t gi = 0; gi < group; ++gi) {
          const float* xg = inp[0] + (n * C + gi * cin_g) * H * W;
          float* yg = outp[0] + (n * M + gi * cout_g) * OH * OW;
          GemmB b;
          b.data = xg;
          if (pointwise) {
            b.kind = GemmB::Kind::RowMajor;
            b.ld = H * W;
          } else {
            b.kind = GemmB::Kind::Im2col;
            b.H = H; b.W = W; b.KH = KH; b.KW = KW; b.OW = OW;
            b.stride_h = static_cast<int>(g.stride_h); b.stride_w = static_cast<int>(g.stride_w);
            b.pad_top = static_cast<int>(g.pad_top); b.pad_left = static_cast<int>(g.pad_left);
            b.dilation_h = static_cast<int>(g.dilation_h); b.dilation_w = static_cast<int>(g.dilation_w);
          }
          GemmEpilogue ep;
          ep.row_bias = (*bv)[gi].data();
          ep.row_slope = act.kind == ActKind::PRelu ? (*slope)[gi].data() : nullptr;
          ep.act = act;
          Gemm(cout_g, OH * OW, K, (*a)[gi].data(), b, yg, OH * OW, ep, pool);
        }
      }
    };
  }

 private:
  Window2d Geometry(const Shape& x, const Shape& w) const {
    return ResolveWindow2d(*this, x[2], x[3], w[2], w[3], /*ceil_mode=*/false);
  }
  int64_t group_ = 1;
  Activation act_;
};

}  // namespace

std::unique_ptr<Op> MakeConv(const Node& node, int64_t opset) {
  return node.op_type == "Conv" ? std::make_unique<ConvOp>(node, opset) : nullptr;
}

}  // namespace facesight
