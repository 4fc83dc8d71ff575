// Gemm (alpha·A'·B' + beta·C) and MatMul (N-D, broadcast batch axes) on the blocked GEMM.
#include <algorithm>

#include "engine/op.h"
#include "ops/broadcast.h"
#include "ops/gemm.h"

namespace facesight {
namespace {

class GemmOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    const Shape& a = Required(in, 0).shape;
    const Shape& b = Required(in, 1).shape;
    if (a.size() != 2 || b.size() != 2) ModelError("expects 2-D A and B, got ", ShapeToString(a), " and ", ShapeToString(b));
    const bool ta = node_.Int("transA", 0), tb = node_.Int("transB", 0);
    const int64_t M = ta ? a[1] : a[0], K = ta ? a[0] : a[1];
    const int64_t Kb = tb ? b[1] : b[0], N = tb ? b[0] : b[1];
    if (K != Kb) Fail(ErrorCode::Input, node_.Describe(), ": inner sizes differ: A ", ShapeToString(a), ", B ", ShapeToString(b));
    if (in.size() > 2 && in[2]) {
      Shape y;
      if (!BroadcastShape(in[2]->shape, {M, N}, &y) || y != Shape{M, N}) ModelError("C ", ShapeToString(in[2]->shape), " does not broadcast to [", M, ", ", N, "]");
    }
    return {ValueDesc{DType::Float32, {M, N}, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>& out) const override {
    const Shape as = in[0]->shape, bs = in[1]->shape;
    const bool ta = node_.Int("transA", 0), tb = node_.Int("transB", 0);
    const float alpha = node_.Float("alpha", 1.f), beta = node_.Float("beta", 1.f);
    const int64_t M = out[0].shape[0], N = out[0].shape[1], K = ta ? as[0] : as[1];
    const bool has_c = in.size() > 2 && in[2];
    const Shape cs = has_c ? in[2]->shape : Shape{};
    const int64_t nr = Kernels().nr, mr = Kernels().mr;
    // Constant B (a Linear layer's weight) is laid out once both ways: packed panels for the GEMM,
    // N×K rows for the dot products that serve small batches.
    auto b_packed = std::make_shared<std::vector<float>>();
    auto b_nk = std::make_shared<std::vector<float>>();
    if (const HostTensor* bc = in[1]->constant) {
      *b_packed = PackGemmB(bc->f.data(), K, N, tb ? K : N, tb);
      b_nk->resize(K * N);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) (*b_nk)[n * K + k] = tb ? bc->f[n * K + k] : bc->f[k * N + n];
    }
    // A bias of N values (the usual Linear layer) rides in the epilogue; other C shapes are added after.
    const bool c_is_row = has_c && NumElements(cs) == N && (cs.size() == 1 || cs[0] == 1) && (cs.empty() || cs.back() == N);
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      std::vector<float> col_bias;
      if (c_is_row && beta != 0.f) {
        col_bias = PadVector(inp[2], N, nr);
        if (beta != 1.f) for (float& v : col_bias) v *= beta;
      }
      if (M < mr && !b_nk->empty() && !ta) {
        // Small batch: each output is one dot product of an input row with a weight row.
        const SimdKernels& k = Kernels();
        ParallelFor(pool, M * N, 64, [&](int64_t i0, int64_t i1) {
          for (int64_t i = i0; i < i1; ++i) {
            const int64_t m = i / N, n = i % N;
            float v = alpha * k.dot(inp[0] + m * K, b_nk->data() + n * K, K);
            outp[0][i] = col_bias.empty() ? v : v + col_bias[n];
          }
        });
      } else {
        std::vector<float> a = PackGemmA(inp[0], M, K, ta ? M : K, ta);
        if (alpha != 1.f) for (float& v : a) v *= alpha;
        GemmB b;
        if (!b_packed->empty()) {
          b.kind = GemmB::Kind::Packed;
          b.data = b_packed->data();
          b.ld = K;
        } else {
          b.kind = tb ? GemmB::Kind::Transposed : GemmB::Kind::RowMajor;
          b.data = inp[1];
          b.ld = tb ? K : N;
        }
        GemmEpilogue ep;
        ep.col_bias = col_bias.empty() ? nullptr : col_bias.data();
        Gemm(M, N, K, a.data(), b, outp[0], N, ep, pool);
      }
      if (has_c && !c_is_row && beta != 0.f) {
        const float* c = inp[2];
        BroadcastBinary(outp[0], Shape{M, N}, c, cs, outp[0], Shape{M, N}, [beta](float y, float cv) { return y + beta * cv; });
      }
    };
  }
};

class MatMulOp : public Op {
 public:
  using Op::Op;
  std::vector<ValueDesc> Infer(const Inputs& in) const override {
    Dims d = Resolve(Required(in, 0).shape, Required(in, 1).shape);
    return {ValueDesc{DType::Float32, d.out, nullptr}};
  }
  KernelFn Build(const Inputs& in, const std::vector<ValueDesc>&) const override {
    const Dims d = Resolve(in[0]->shape, in[1]->shape);
    return [=](const float* const* inp, float* const* outp, ThreadPool* pool) {
      const int64_t batches = NumElements(d.batch);
      const auto sa = BroadcastStrides(d.a_batch, d.batch), sb = BroadcastStrides(d.b_batch, d.batch);
      std::vector<int64_t> idx(d.batch.size(), 0);
      std::vector<float> a(PackedGemmASize(d.M, d.K));
      for (int64_t bi = 0; bi < batches; ++bi) {
        int64_t ia = 0, ib = 0;
        for (size_t k = 0; k < idx.size(); ++k) { ia += idx[k] * sa[k]; ib += idx[k] * sb[k]; }
        PackGemmAInto(inp[0] + ia * d.M * d.K, d.M, d.K, d.K, false, a.data());
        GemmB b;
        b.kind = GemmB::Kind::RowMajor;
        b.data = inp[1] + ib * d.K * d.N;
        b.ld = d.N;
        Gemm(d.M, d.N, d.K, a.data(), b, outp[0] + bi * d.M * d.N, d.N, GemmEpilogue{}, pool);
        for (int64_t k = static_cast<int64_t>(idx.size()) - 1; k >= 0; --k) {
          if (++idx[k] < d.batch[k]) break;
          idx[k] = 0;
        }
      }
    };
  }
 private:
  struct Dims { int64_t M, K, N; Shape a_batch, b_batch, batch, out; };
  Dims Resolve(Shape a, Shape b) const {
    if (a.empty() || b.empty()) ModelError("scalar operands are not allowed");
    const bool a_vec = a.size() == 1, b_vec = b.size() == 1;
    if (a_vec) a.insert(a.begin(), 1);
    if (b_vec) b.push_back(1);
    Dims d;
    d.M = a[a.size() - 2]; d.K = a.back(); d.N = b.back();
    if (b[b.size() - 2] != d.K) Fail(ErrorCode::Input, node_.Describe(), ": inner sizes differ: ", ShapeToString(a), " × ", ShapeToString(b));
    d.a_batch.assign(a.begin(), a.end() - 2);
    d.b_batch.assign(b.begin(), b.end() - 2);
    if (!BroadcastShape(d.a_batch, d.b_batch, &d.batch)) Fail(ErrorCode::Input, node_.Describe(), ": batch axes do not broadcast");
    d.out = d.batch;
    if (!a_vec) d.out.push_back(d.M);
    if (!b_vec) d.out.push_back(d.N);
    return d;
  }
};

}  // namespace

std::unique_ptr<Op> MakeMatMul(const Node& node, int64_t) {
  if (node.op_type == "Gemm") return std::make_unique<GemmOp>(node);
  if (node.op_type == "MatMul") return std::make_unique<MatMulOp>(node);
  return nullptr;
}

}  // namespace facesight
