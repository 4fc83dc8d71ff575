// Conv (2-D, NCHW): any kernel, stride, padding (explicit or auto_pad), dilation and group. Paths:
// NCHW16c direct kernels (dense convs with whole output blocks, depthwise convs); in NCHW, the 3×3
// depthwise kernel, a direct kernel for few output channels, 1×1 stride-1 convs as a GEMM reading the
// image in place (or transposed, on small images), and the general case as a GEMM with implicit
// im2col. Bias and a fused activation are applied in the store. Also SeparableConv, a depthwise conv
// fused with the pointwise conv that reads it.
#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/graph_passes.h"
#include "engine/op.h"
#include "ops/gemm.h"
#include "ops/kernels.h"
#include "ops/layout.h"
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

  // Dense and depthwise convs with whole channel blocks run in NCHW16c when their weights are known.
  LayoutUse Layout(const Inputs& in) const override {
    const ValueDesc* w = in[1];
    if (!w || !w->constant || w->shape.size() != 4 || in[0]->shape.size() != 4) return LayoutUse::Nchw;
    for (size_t k = 2; k < in.size(); ++k)
      if (in[k] && !in[k]->constant) return LayoutUse::Nchw;
    const int64_t M = w->shape[0], C = in[0]->shape[1];
    if (M % kChannelBlock) return LayoutUse::Nchw;
    if (group_ == 1) return LayoutUse::Produces;
    if (group_ == C && M == C && w->shape[1] == 1 && CanBlock(in[0]->shape)) return LayoutUse::Needs;
    return LayoutUse::Nchw;
  }

  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    if (out[0].blocked || in[0]->blocked) return BuildBlocked(in, out);  // a 1×1 output is NCHW as well
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
    if (std::optional<Depthwise3x3Step> dw = PrepareDepthwise3x3(in)) {
      return [dw = *dw](const float* const* inp, float* const* outp, ThreadPool* pool) {
        const int64_t N = dw.N, C = dw.C, H = dw.args.H, W = dw.args.W, OH = dw.args.OH, OW = dw.args.OW;
        const int64_t scratch = Kernels().depthwise3x3_scratch(H, W, OH, OW, dw.args.stride);
        ParallelFor(pool, N * C, 1, [&](int64_t b, int64_t e) {
          thread_local std::vector<float> buffer;
          if (static_cast<int64_t>(buffer.size()) < scratch) buffer.resize(scratch);
          for (int64_t nc = b; nc < e;) {
            const int64_t n = nc / C, c0 = nc % C, c1 = std::min(C, c0 + (e - nc));
            dw.Run(inp[0] + n * C * H * W, outp[0] + n * C * OH * OW, c0, c1, 0, OH, OH * OW, buffer.data());
            nc += c1 - c0;
          }
        });
      };
    }

    // Few output channels from a few input channels (RetinaFace-mnet0.25's 3→8 RGB stem): too few
    // outputs for NCHW16c, and as an im2col GEMM each input value went through a column buffer nine
    // times. The direct kernel loads each input vector once for all output channels (RetinaFace
    // batch 1 −7 %; at batch 8 the stem is bound by memory either way).
    if (group_ == 1 && M < kChannelBlock && C * KH <= 64 && C * KH * KW <= 64 && g.dilation_h == 1 &&
        g.dilation_w == 1 && g.stride_h == g.stride_w && g.stride_h <= 2 && OW >= 16 && wc && (!has_bias || bc)) {
      auto weights = std::make_shared<std::vector<float>>(wc->f);
      auto bias = BiasOrZeros(in, M);
      auto slope = Slopes(in);
      const int64_t per_image = std::clamp<int64_t>((16 + N - 1) / N, 1, OH);  // row runs: ≥ 16 items
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        const SimdKernels& k = Kernels();
        DirectConvArgs a{nullptr, nullptr, weights->data(), bias->data(), slope->empty() ? nullptr : slope->data(),
                         act, C, H, W, M, OH, OW, KH, KW, g.stride_h, g.pad_top, g.pad_left};
        const int64_t scratch = k.conv_direct_scratch(a);
        ParallelFor(pool, N * per_image, 1, [&](int64_t i0, int64_t i1) {
          thread_local std::vector<float> buffer;
          if (static_cast<int64_t>(buffer.size()) < scratch) buffer.resize(scratch);
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t n = i / per_image, run = i % per_image;
            DirectConvArgs image = a;
            image.x = inp[0] + n * C * H * W;
            image.y = outp[0] + n * M * OH * OW;
            k.conv_direct(image, run * OH / per_image, (run + 1) * OH / per_image, buffer.data());
          }
        });
      };
    }

    // GEMM paths, per group: Y[g] = W[g] · B[g]. Weights are packed once here.
    const int64_t K = cin_g * KH * KW;
    const int64_t mr = Kernels().mr;
    const bool pointwise = KH == 1 && KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 &&
                           g.pad_left == 0 && g.pad_bottom == 0 && g.pad_right == 0;
    // Pointwise convs on small images (late MobileNet layers: 10×10, 5×5) waste most of each NR-wide
    // column panel in the NCHW form. There the product is taken transposed, pixels of every image
    // as rows and output channels as columns (Yᵀ = Xᵀ·Wᵀ), then transposed back.
    auto used = [](int64_t n, int64_t tile) { return static_cast<double>(n) / ((n + tile - 1) / tile * tile); };
    const double nchw_efficiency = used(N * OH * OW, Kernels().nr);  // the batch is one GEMM
    const double transposed_efficiency = used(N * OH * OW, Kernels().mr) * used(M, Kernels().nr);
    if (pointwise && group_ == 1 && wc && act.kind != ActKind::PRelu && OH * OW <= 1024 &&
        transposed_efficiency > nchw_efficiency + 0.1 && (!has_bias || bc)) {
      const int64_t HW = OH * OW, nr = Kernels().nr;
      // B = Wᵀ (C × M), i.e. the weight [M × C] read transposed, packed once into panels.
      auto w_t = std::make_shared<std::vector<float>>(PackGemmB(wc->f.data(), C, M, C, /*transposed=*/true));
      auto col_bias = std::make_shared<std::vector<float>>(PadVector(bc ? bc->f.data() : nullptr, M, nr));
      auto a_packed = std::make_shared<std::vector<float>>();
      auto product = std::make_shared<std::vector<float>>(N * HW * M);
      return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
        const int64_t rows = N * HW, mr = Kernels().mr;
        a_packed->resize(PackedGemmASize(rows, C));
        // A[n·HW + i][c] = x[n][c][i], in MR-row panels.
        float* pa = a_packed->data();
        ParallelFor(pool, (rows + mr - 1) / mr, 4, [&](int64_t p0, int64_t p1) {
          for (int64_t p = p0; p < p1; ++p) {
            float* panel = pa + p * mr * C;
            const int64_t row0 = p * mr;
            if (row0 % HW + mr <= HW && row0 + mr <= rows) {
              // MR neighbouring pixels of one image: one short contiguous copy per channel.
              const float* src = inp[0] + (row0 / HW) * C * HW + row0 % HW;
              for (int64_t c = 0; c < C; ++c) std::copy_n(src + c * HW, mr, panel + c * mr);
              continue;
            }
            const float* src[16];  // rows straddle images (or the end): one pointer per row
            for (int64_t r = 0; r < mr; ++r) {
              const int64_t row = row0 + r;
              src[r] = row < rows ? inp[0] + (row / HW) * C * HW + row % HW : nullptr;
            }
            for (int64_t c = 0; c < C; ++c)
              for (int64_t r = 0; r < mr; ++r) panel[c * mr + r] = src[r] ? src[r][c * HW] : 0.f;
          }
        });
        GemmB b;
        b.kind = GemmB::Kind::Packed;
        b.data = w_t->data();
        b.ld = C;
        GemmEpilogue ep;
        ep.col_bias = col_bias->data();
        ep.act = act;
        Gemm(rows, M, C, pa, b, product->data(), M, ep, pool);
        // Back to NCHW: y[n][m][i] = t[n·HW + i][m], in 16×16 blocks so reads and writes both stay
        // within a few cache lines.
        const float* t = product->data();
        constexpr int64_t kBlock = 16;
        const int64_t m_blocks = (M + kBlock - 1) / kBlock, i_blocks = (HW + kBlock - 1) / kBlock;
        ParallelFor(pool, N * m_blocks * i_blocks, 4, [&](int64_t b0, int64_t b1) {
          for (int64_t blk = b0; blk < b1; ++blk) {
            const int64_t n = blk / (m_blocks * i_blocks), rest = blk % (m_blocks * i_blocks);
            const int64_t m0 = rest / i_blocks * kBlock, i0 = rest % i_blocks * kBlock;
            const int64_t m1 = std::min(M, m0 + kBlock), i1 = std::min(HW, i0 + kBlock);
            for (int64_t m = m0; m < m1; ++m) {
              float* y = outp[0] + (n * M + m) * HW;
              for (int64_t i = i0; i < i1; ++i) y[i] = t[(n * HW + i) * M + m];
            }
          }
        });
      };
    }
    // Dense k×k convs run as shifted GEMMs over a padded copy of the image split into stride phases:
    // each (tap, channel) row of B is a contiguous run of that copy, so nothing like im2col is built.
    const bool use_taps = !pointwise;
    const int64_t s_h = g.stride_h, s_w = g.stride_w;
    const int64_t Hq = (std::max(H + g.pad_top + g.pad_bottom, (OH - 1) * s_h + (KH - 1) * g.dilation_h + 1) + s_h - 1) / s_h;
    const int64_t Wq = (std::max(W + g.pad_left + g.pad_right, (OW - 1) * s_w + (KW - 1) * g.dilation_w + 1) + s_w - 1) / s_w;
    const int64_t plane = Hq * Wq, phases = s_h * s_w;
    auto tap_offsets = std::make_shared<std::vector<int64_t>>();
    if (use_taps) {
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw) {
          const int64_t r = kh * g.dilation_h, q = kw * g.dilation_w;
          const int64_t phase = (r % s_h) * s_w + q % s_w;
          tap_offsets->push_back(phase * C * plane + (r / s_h) * Wq + q / s_w);
        }
    }
    // Packed weights per group; for taps the K order is (tap, channel).
    auto pack_weights = [=](const float* w_all) {
      std::vector<std::vector<float>> packed;
      std::vector<float> reordered(cout_g * K);
      for (int64_t gi = 0; gi < group_; ++gi) {
        const float* wg = w_all + gi * cout_g * K;
        if (!use_taps) {
          packed.push_back(PackGemmA(wg, cout_g, K, K, false));
          continue;
        }
        for (int64_t m = 0; m < cout_g; ++m)
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t t = 0; t < KH * KW; ++t) reordered[m * K + t * cin_g + c] = wg[(m * cin_g + c) * KH * KW + t];
        packed.push_back(PackGemmA(reordered.data(), cout_g, K, K, false));
      }
      return packed;
    };
    auto packed = std::make_shared<std::vector<std::vector<float>>>();
    if (wc) *packed = pack_weights(wc->f.data());
    auto pad_per_group = [&](const HostTensor* t) {
      auto v = std::make_shared<std::vector<std::vector<float>>>();
      for (int64_t gi = 0; gi < group_; ++gi) v->push_back(PadVector(t ? t->f.data() + gi * cout_g : nullptr, cout_g, mr));
      return v;
    };
    auto bias = pad_per_group(bc);
    auto slope = pad_per_group(sc);
    const int64_t group = group_;
    const bool runtime_bias = has_bias && !bc;
    // Scratch owned by this kernel: an engine runs one step at a time, so it is never shared.
    // Phase planes of every image (+ slack: the last columns of the last row may read a few floats
    // past a plane; they only feed output columns that compaction drops).
    const int64_t image_planes = phases * C * plane;
    auto phase_buffer = std::make_shared<std::vector<float>>(use_taps ? N * image_planes + Wq + 16 : 0);
    // Taps produce rows of Wq columns per output row; only the first OW are kept.
    const int64_t wide_cols = use_taps ? OH * Wq : OH * OW;
    auto wide_output = std::make_shared<std::vector<float>>(wide_cols != OH * OW ? N * M * wide_cols : 0);
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      std::vector<std::vector<float>> runtime_packed, runtime_bias_v;
      const std::vector<std::vector<float>>* a = packed.get();
      const std::vector<std::vector<float>>* bv = bias.get();
      if (a->empty()) {  // weights computed at run time (rare): pack per run
        runtime_packed = pack_weights(inp[1]);
        a = &runtime_packed;
      }
      if (runtime_bias) {
        for (int64_t gi = 0; gi < group; ++gi) runtime_bias_v.push_back(PadVector(inp[2] + gi * cout_g, cout_g, mr));
        bv = &runtime_bias_v;
      }
      if (use_taps) {
        // plane[n][phase][c][i][j] = padded x[n][c] at row i·s_h + ph, column j·s_w + pw.
        ParallelFor(pool, N * C, 4, [&](int64_t j0, int64_t j1) {
          for (int64_t j = j0; j < j1; ++j) {
            const int64_t n = j / C, c = j % C;
            float* planes = phase_buffer->data() + n * image_planes;
            // Zero only what the copy below leaves unwritten: the padding around the image.
            for (int64_t ph = 0; ph < phases; ++ph) {
              float* pl = planes + (ph * C + c) * plane;
              const Span rows = Written(ph / s_w, s_h, g.pad_top, H, Hq);
              const Span cols = Written(ph % s_w, s_w, g.pad_left, W, Wq);
              std::fill_n(pl, rows.lo * Wq, 0.f);
              std::fill_n(pl + rows.hi * Wq, (Hq - rows.hi) * Wq, 0.f);
              for (int64_t r = rows.lo; r < rows.hi; ++r) {
                std::fill_n(pl + r * Wq, cols.lo, 0.f);
                std::fill_n(pl + r * Wq + cols.hi, Wq - cols.hi, 0.f);
              }
            }
            for (int64_t ih = 0; ih < H; ++ih) {
              const int64_t i = ih + g.pad_top;
              const float* src = inp[0] + ((n * C + c) * H + ih) * W;
              float* rows = planes + c * plane + (i % s_h) * s_w * C * plane + (i / s_h) * Wq;
              if (s_w == 1) {
                std::copy(src, src + std::min(W, Wq - g.pad_left), rows + g.pad_left);
              } else if (s_w == 2 && (W + 1) / 2 + (g.pad_left + 1) / 2 <= Wq) {
                // Even source columns land in phase pad_left % 2 from column ⌊pad_left/2⌋, odd ones in
                // the other phase from ⌈pad_left/2⌉.
                float* first = rows + (g.pad_left % 2) * C * plane + g.pad_left / 2;
                float* second = rows + ((g.pad_left + 1) % 2) * C * plane + (g.pad_left + 1) / 2;
                Kernels().deinterleave2(src, W, first, second);
              } else {
                // Column j = iw + pad_left goes to phase j % s_w at j / s_w: one strided pass per phase.
                for (int64_t pw = 0; pw < s_w; ++pw) {
                  float* dst = rows + pw * C * plane;
                  int64_t iw = ((pw - g.pad_left) % s_w + s_w) % s_w;
                  for (int64_t col = (iw + g.pad_left) / s_w; iw < W && col < Wq; iw += s_w, ++col) dst[col] = src[iw];
                }
              }
            }
          }
        });
      }
      // One GEMM per group over all images: the batch shares the packed weights.
      float* target = wide_output->empty() ? outp[0] : wide_output->data();
      for (int64_t gi = 0; gi < group; ++gi) {
        GemmB b;
        GemmBatch batch;
        batch.cols_per_image = wide_cols;
        batch.c_image_stride = M * wide_cols;
        if (pointwise) {
          b.kind = GemmB::Kind::RowMajor;
          b.data = inp[0] + gi * cin_g * H * W;
          b.ld = H * W;
          batch.b_image_stride = C * H * W;
        } else {
          b.kind = GemmB::Kind::Taps;
          b.data = phase_buffer->data() + gi * cin_g * plane;
          b.ld = plane;
          b.tap_offsets = tap_offsets->data();
          b.tap_rows = cin_g;
          batch.b_image_stride = image_planes;
        }
        GemmEpilogue ep;
        ep.row_bias = (*bv)[gi].data();
        ep.row_slope = act.kind == ActKind::PRelu ? (*slope)[gi].data() : nullptr;
        ep.act = act;
        Gemm(cout_g, N * wide_cols, K, (*a)[gi].data(), b, target + gi * cout_g * wide_cols, wide_cols, ep, pool, batch);
      }
      if (target != outp[0]) {
        ParallelFor(pool, N * M * OH, 64, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r) std::copy_n(target + r * Wq, OW, outp[0] + r * OW);
        });
      }
    };
  }

  // This conv bound to its shapes for the NCHW16c kernels: geometry resolved, weights packed once.
  struct BlockedConvStep {
    bool depthwise = false, flat = false, x_blocked = false, stream_out = false;
    int64_t N = 0, C = 0, H = 0, W = 0, M = 0, OH = 0, OW = 0, KH = 1, KW = 1;
    Window2d g;
    Activation act;
    std::shared_ptr<std::vector<float>> weights, bias, slope;

    // One image: output blocks [ob0, ob1) of rows [r0, r1) — or, for a flat 1×1 conv, of pixels
    // [r0, r1). y holds the image's output from row y_row0 on, y_plane floats between blocks.
    void Run(const float* x, float* y, int64_t y_plane, int64_t y_row0, int64_t ob0, int64_t ob1, int64_t r0,
             int64_t r1) const {
      const SimdKernels& k = Kernels();
      const float* sl = slope->empty() ? nullptr : slope->data();
      if (depthwise) {
        BlockedDepthwiseArgs a{x, y, weights->data(), bias->data(), sl, act, H, W, OH, OW, KH, KW, g.stride_h,
                               g.stride_w, g.pad_top, g.pad_left, g.dilation_h, g.dilation_w, y_plane, y_row0};
        k.depthwise_blocked(a, ob0, ob1, r0, r1);
        return;
      }
      // Flat: a 1×1 stride-1 conv with no padding maps pixel i to pixel i, so the image is one long
      // row and micro-tiles run across row ends (a 10×10 map is 16 full tiles of 6, not 10 × (6 + 4)).
      BlockedConvArgs a{x, x_blocked, y, weights->data(), bias->data(), sl, act, C, flat ? 1 : H, flat ? H * W : W, M,
                        flat ? 1 : OH, flat ? OH * OW : OW, KH, KW, g.stride_h, g.stride_w, g.pad_top, g.pad_left,
                        g.dilation_h, g.dilation_w, y_plane, y_row0,
                        stream_out && reinterpret_cast<uintptr_t>(y) % 64 == 0};
      if (flat) k.conv_blocked(a, ob0, ob1, 0, 1, r0, r1);
      else k.conv_blocked(a, ob0, ob1, r0, r1, 0, OW);
    }
  };

  // This conv bound to its shapes for the NCHW depthwise 3×3 kernel (stride 1 or 2, no dilation).
  struct Depthwise3x3Step {
    int64_t N = 0, C = 0;
    Depthwise3x3Args args{};  // x, y and the row range set per call
    std::shared_ptr<std::vector<float>> weights, bias, slope;

    // Channels [c0, c1) × output rows [oh0, oh1) of one image; y gets those rows, y_plane floats apart.
    void Run(const float* x, float* y, int64_t c0, int64_t c1, int64_t oh0, int64_t oh1, int64_t y_plane,
             float* scratch) const {
      Depthwise3x3Args a = args;
      a.x = x, a.y = y, a.oh_begin = oh0, a.oh_end = oh1, a.y_plane = y_plane;
      Kernels().depthwise3x3(a, c0, c1, scratch);
    }
  };

  // None when the kernel does not apply.
  std::optional<Depthwise3x3Step> PrepareDepthwise3x3(const Inputs& in) const {
    const Shape x = in[0]->shape, w = in[1]->shape;
    const Window2d g = Geometry(x, w);
    const int64_t C = x[1];
    const HostTensor* wc = in[1]->constant;
    const HostTensor* bc = in.size() > 2 && in[2] ? in[2]->constant : nullptr;
    const bool has_bias = in.size() > 2 && in[2];
    if (!(group_ == C && w[0] == C && w[2] == 3 && w[3] == 3 && g.stride_h == g.stride_w && g.stride_h <= 2 &&
          g.dilation_h == 1 && g.dilation_w == 1 && g.pad_left <= 2 && g.pad_top <= 2 && wc && (!has_bias || bc)))
      return std::nullopt;
    Depthwise3x3Step d;
    d.N = x[0], d.C = C;
    d.weights = std::make_shared<std::vector<float>>(wc->f);
    d.bias = BiasOrZeros(in, C);
    d.slope = Slopes(in);
    d.args = Depthwise3x3Args{nullptr, nullptr, d.weights->data(), d.bias->data(),
                              d.slope->empty() ? nullptr : d.slope->data(), act_, x[2], x[3], g.out_h, g.out_w,
                              static_cast<int>(g.stride_h), static_cast<int>(g.pad_top), static_cast<int>(g.pad_left)};
    return d;
  }

  BlockedConvStep PrepareBlocked(const Inputs& in, const std::vector<ValueDesc>& out) const {
    BlockedConvStep s;
    const Shape x = in[0]->shape, w = in[1]->shape;
    s.g = Geometry(x, w);
    s.N = x[0], s.C = x[1], s.H = x[2], s.W = x[3];
    s.M = w[0], s.KH = w[2], s.KW = w[3], s.OH = out[0].shape[2], s.OW = out[0].shape[3];
    s.depthwise = group_ != 1;
    s.x_blocked = in[0]->blocked;
    s.flat = !s.depthwise && s.KH == 1 && s.KW == 1 && s.g.stride_h == 1 && s.g.stride_w == 1 && s.g.pad_top == 0 &&
             s.g.pad_left == 0 && s.OH == s.H && s.OW == s.W;
    s.weights = std::make_shared<std::vector<float>>(
        s.depthwise ? PackBlockedDepthwiseWeights(in[1]->constant->f.data(), s.C, s.KH, s.KW)
                    : PackBlockedConvWeights(in[1]->constant->f.data(), s.M, s.C, s.KH, s.KW));
    s.bias = BiasOrZeros(in, s.M);
    s.slope = Slopes(in);
    s.act = act_;
    // An output far larger than the caches goes to memory before the next layer reads it: store it
    // with streaming writes, which skip reading each line first (the RGB stem at batch 32: −17 %).
    constexpr int64_t kStreamBytes = int64_t{16} << 20;
    s.stream_out = !s.depthwise && s.N * s.M * s.OH * s.OW * 4 >= kStreamBytes;
    return s;
  }

 private:
  // The bias input as a constant (zeros when there is none) and the PRelu slopes (empty when the
  // activation is not PRelu), bound once per plan for the kernels that read them.
  static std::shared_ptr<std::vector<float>> BiasOrZeros(const Inputs& in, int64_t M) {
    const HostTensor* bc = in.size() > 2 && in[2] ? in[2]->constant : nullptr;
    return std::make_shared<std::vector<float>>(bc ? bc->f : std::vector<float>(M, 0.f));
  }
  static std::shared_ptr<std::vector<float>> Slopes(const Inputs& in) {
    const HostTensor* sc = in.size() > 3 && in[3] ? in[3]->constant : nullptr;
    return std::make_shared<std::vector<float>>(sc ? sc->f : std::vector<float>());
  }

  // NCHW16c output (Layout said Produces or Needs; for a 1×1 map the same memory as NCHW): the step
  // over a whole batch, split across the pool.
  KernelFn BuildBlocked(const Inputs& in, const std::vector<ValueDesc>& out) const {
    const BlockedConvStep step = PrepareBlocked(in, out);
    const int64_t N = step.N;
    // Items: (image, run of rows or, flat, of pixels, group of output blocks one micro-tile covers).
    // At least 16 of them when the sizes allow, so threads finish together, but no more: each item
    // streams its group's weights through L1 once per tile, so long items amortise them best. Runs
    // outside groups: the pool gives each thread the same share of the items in every step, which is
    // then the same images and rows, the ones it wrote the step before (by groups, half of each
    // input came from the other core's cache: FaceNet batch 1 −10 %, RetinaFace batch 1 −5 %).
    const int64_t blocks = step.M / kChannelBlock;
    const int64_t tile_blocks = step.depthwise ? 1 : Kernels().conv_blocked_tile_blocks;
    const int64_t groups = (blocks + tile_blocks - 1) / tile_blocks;
    const int64_t unit = step.flat ? Kernels().conv_blocked_tile_pixels(std::min(blocks, tile_blocks)) : 1;  // chunks: rows, or tiles
    const int64_t length = step.flat ? step.OH * step.OW : step.OH;
    const int64_t span = (length + unit - 1) / unit;
    const int64_t want = std::clamp<int64_t>((16 + N * groups - 1) / (N * groups), 1, span);
    const int64_t per_chunk = (span + want - 1) / want;
    const int64_t chunks = (span + per_chunk - 1) / per_chunk;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      ParallelFor(pool, N * groups * chunks, 1, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t n = i / (groups * chunks), rest = i % (groups * chunks);
          const int64_t ob0 = rest % groups * tile_blocks, ob1 = std::min(blocks, ob0 + tile_blocks);
          const int64_t r0 = rest / groups * per_chunk * unit, r1 = std::min(length, r0 + per_chunk * unit);
          step.Run(inp[0] + n * step.C * step.H * step.W, outp[0] + n * step.M * step.OH * step.OW,
                   step.OH * step.OW * kChannelBlock, 0, ob0, ob1, r0, r1);
        }
      });
    };
  }

  // Which rows (or columns) of a stride-phase plane hold image data: padded index i = pad + t for
  // t in [0, size), with i % stride == phase, lands at i / stride.
  struct Span { int64_t lo, hi; };
  static Span Written(int64_t phase, int64_t stride, int64_t pad, int64_t size, int64_t limit) {
    const int64_t first = pad + ((phase - pad) % stride + stride) % stride;
    if (first >= pad + size) return {0, 0};
    const int64_t count = (pad + size - 1 - first) / stride + 1;
    const int64_t lo = std::min(first / stride, limit);
    return {lo, std::min(lo + count, limit)};
  }

  Window2d Geometry(const Shape& x, const Shape& w) const {
    return ResolveWindow2d(*this, x[2], x[3], w[2], w[3], /*ceil_mode=*/false);
  }
  int64_t group_ = 1;
  Activation act_;
};

// A depthwise conv and the pointwise conv that alone reads it (MobileNet's separable block), fused by
// FuseSeparableConvs. In NCHW16c each work item computes a band of depthwise rows, all channels, into
// a small buffer and runs the pointwise conv on it at once: the depthwise output never leaves L1 /
// L2, where unfused it makes a round trip through memory (batched early layers: tens of MiB).
class SeparableConvOp : public Op {
 public:
  SeparableConvOp(const Node& node, int64_t opset)
      : Op(node), depthwise_(Part(node, "dw."), opset), pointwise_(Part(node, "pw."), opset) {}

  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    ValueDesc mid = depthwise_.Infer(DepthwiseInputs(in))[0];
    return pointwise_.Infer(PointwiseInputs(in, &mid));
  }

  LayoutUse Layout(const Inputs& in) const override {
    const Inputs dw = DepthwiseInputs(in);
    const ValueDesc mid = depthwise_.Infer(dw)[0];
    if (depthwise_.Layout(dw) == LayoutUse::Needs && CanBlock(mid.shape)) return LayoutUse::Needs;
    // Channels that are not whole blocks (RetinaFace-mnet0.25's 8): the depthwise conv in NCHW, the
    // pointwise one writing NCHW16c, as the pair would unfused.
    if (!CanBlock(in[0]->shape) && pointwise_.Layout(PointwiseInputs(in, &mid)) == LayoutUse::Produces)
      return LayoutUse::Produces;
    return LayoutUse::Nchw;
  }

  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    ValueDesc mid = depthwise_.Infer(DepthwiseInputs(in))[0];
    mid.blocked = in[0]->blocked;
    const Inputs dw_in = DepthwiseInputs(in), pw_in = PointwiseInputs(in, &mid);
    const int64_t N = mid.shape[0], C = mid.shape[1], OH = mid.shape[2], OW = mid.shape[3];
    const int64_t M = out[0].shape[1];
    // Small pointwise weights (≤ 64 KiB) stay in L1 / L2 however small the bands, which hold up to
    // 64 KiB of depthwise output (1.5–2.5 % faster than 32 KiB on FaceNet and RetinaFace, A/B
    // 2026-11-29). Larger weights are streamed once per band, so their bands are up to 512 KiB — a
    // whole image of the usual sizes, as much weight traffic as the unfused pointwise conv has.
    const bool large_weights = M * C > 16 * 1024;
    const int64_t band_bytes = large_weights ? int64_t{512} << 10 : int64_t{64} << 10;
    const auto unfused_fallback = [&]() -> KernelFn {
      return Unfused(depthwise_.Build(dw_in, {mid}), pointwise_.Build(pw_in, out), NumElements(mid.shape));
    };
    if (!out[0].blocked) return unfused_fallback();  // NCHW throughout (the layout is off)
    // The depthwise conv of a band: in NCHW16c, or (channels not whole blocks) the NCHW 3×3 kernel
    // writing the band's planes.
    std::optional<ConvOp::BlockedConvStep> dw_blocked;
    std::optional<ConvOp::Depthwise3x3Step> dw_planes;
    if (in[0]->blocked) dw_blocked = depthwise_.PrepareBlocked(dw_in, {mid});
    else if (!(dw_planes = depthwise_.PrepareDepthwise3x3(dw_in))) return unfused_fallback();
    const int64_t image = C * in[0]->shape[2] * in[0]->shape[3];
    const int64_t dw_scratch =
        dw_planes ? Kernels().depthwise3x3_scratch(dw_planes->args.H, dw_planes->args.W, OH, OW, dw_planes->args.stride) : 0;
    const ConvOp::BlockedConvStep pw = pointwise_.PrepareBlocked(pw_in, out);
    const int64_t band = std::clamp<int64_t>(band_bytes / (C * OW * 4), 1, OH);
    const int64_t bands = (OH + band - 1) / band;
    constexpr int64_t B = kChannelBlock;
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      // Too few bands to keep every thread busy (batch 1 or 2 with large weights): each image is cut
      // into 2 × threads / N bands of equal rows instead, so that each thread takes its own rows
      // through both convs. (Running the two convs one after the other, each split its own way,
      // moved half of each layer between the cores, which share no cache here: FaceNet b1 7 % slower.)
      // Bands of under 16 pixels would each stream all the large weights for too little work (≤ 8
      // FLOP a byte), so there the parts split the output channels, each computing the (cheap)
      // depthwise conv of the whole image (FaceNet's 5×5 layers at batch 1: 4.5 % of the run).
      const int64_t threads = pool ? pool->threads() : 1;
      const bool even = N * bands < 2 * threads;
      const int64_t want = (2 * threads + N - 1) / N;
      const bool by_channels = even && large_weights && OH * OW < 16 * std::min(OH, want);
      const int64_t parts = by_channels ? std::min(want, M / B) : even ? std::min(OH, want) : bands;  // per image
      const int64_t most_rows = by_channels ? OH : even ? (OH + parts - 1) / parts : band;
      ParallelFor(pool, N * parts, 1, [&](int64_t i0, int64_t i1) {
        thread_local std::vector<float> scratch;  // the band's depthwise output, then the kernel's own
        if (static_cast<int64_t>(scratch.size()) < C * most_rows * OW + dw_scratch) scratch.resize(C * most_rows * OW + dw_scratch);
        for (int64_t i = i0; i < i1; ++i) {
          const int64_t n = i / parts, b = i % parts;
          const int64_t r0 = by_channels ? 0 : even ? b * OH / parts : b * band;
          const int64_t r1 = by_channels ? OH : even ? (b + 1) * OH / parts : std::min(OH, r0 + band), rows = r1 - r0;
          const int64_t ob0 = by_channels ? b * (M / B) / parts : 0, ob1 = by_channels ? (b + 1) * (M / B) / parts : M / B;
          if (dw_blocked) dw_blocked->Run(inp[0] + n * image, scratch.data(), rows * OW * B, r0, 0, C / B, r0, r1);
          else dw_planes->Run(inp[0] + n * image, scratch.data(), 0, C, r0, r1, rows * OW, scratch.data() + C * most_rows * OW);
          ConvOp::BlockedConvStep band_pw = pw;  // the pointwise conv over this band only
          band_pw.H = band_pw.OH = rows;
          band_pw.Run(scratch.data(), outp[0] + n * M * OH * OW + r0 * OW * B, OH * OW * B, 0, ob0, ob1, 0, rows * OW);
        }
      });
    };
  }

 private:
  // The conv node a part was: its name, its attributes (prefix stripped), x + its own inputs.
  static Node Part(const Node& fused, const std::string& prefix) {
    Node part;
    part.op_type = "Conv";
    part.name = fused.Str(prefix + kPartName, fused.name);
    for (const auto& [key, value] : fused.attrs)
      if (key.rfind(prefix, 0) == 0 && key != prefix + kPartName) part.attrs[key.substr(prefix.size())] = value;
    return part;
  }
  // The depthwise conv, then the pointwise one (NCHW), through a buffer per calling thread, shared by
  // every separable conv it runs (steps run one at a time), so it stays in cache as an arena value would.
  static KernelFn Unfused(KernelFn first, KernelFn second, int64_t between_size) {
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      thread_local std::vector<float> buffer;
      if (static_cast<int64_t>(buffer.size()) < between_size) buffer.resize(between_size);
      float* between[] = {buffer.data()};
      first(inp, between, pool);
      const float* second_in[] = {buffer.data(), inp[4], inp[5], inp[6]};
      second(second_in, outp, pool);
    };
  }
  static Inputs DepthwiseInputs(const Inputs& in) { return {in[0], in[1], in[2], in[3]}; }
  static Inputs PointwiseInputs(const Inputs& in, const ValueDesc* mid) { return {mid, in[4], in[5], in[6]}; }

  ConvOp depthwise_, pointwise_;
};

}  // namespace

std::unique_ptr<Op> MakeConv(const Node& node, int64_t opset) {
  if (node.op_type == "Conv") return std::make_unique<ConvOp>(node, opset);
  if (node.op_type == kSeparableConv && node.domain == kInternalDomain) return std::make_unique<SeparableConvOp>(node, opset);
  return nullptr;
}

}  // namespace facesight
