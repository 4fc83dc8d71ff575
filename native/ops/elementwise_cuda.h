// CUDA element-wise ops on fp32: broadcasting binaries (NumPy rules, as elementwise.cpp / broadcast.h:
// Add, Sub, Mul, Div, Pow, Max, Min, PRelu), unary activations, and fp32 ↔ fp16 casts (weights for the
// fp16 conv / GEMM paths are converted once with CastCuda). Results equal the CPU op's except Sigmoid /
// Exp / Tanh (≤ 1 ulp: the same double-precision exp, a different rounding path).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/cuda_util.h"
#include "ops/gemm_cuda.h"  // CudaDType

namespace facesight {

enum class BinaryCudaKind : int32_t { kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kPRelu };

constexpr int kBinaryCudaMaxRank = 8;

// The broadcast output shape and each input's element strides seen through it (0 along broadcast
// axes), as BroadcastStrides computes them. Fill with MakeBinaryCudaParams.
struct BinaryCudaParams {
  BinaryCudaKind kind = BinaryCudaKind::kAdd;
  int32_t rank = 0;
  int64_t dims[kBinaryCudaMaxRank] = {};
  int64_t a_strides[kBinaryCudaMaxRank] = {}, b_strides[kBinaryCudaMaxRank] = {};
  bool same_shape = false;  // a, b and y all have the output's shape: a flat loop
};

// Host helper: params for y = a ∘ b with NumPy broadcasting. Returns false when the shapes do not
// broadcast or the rank exceeds kBinaryCudaMaxRank.
inline bool MakeBinaryCudaParams(BinaryCudaKind kind, const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                                 BinaryCudaParams* out) {
  const size_t rank = a.size() > b.size() ? a.size() : b.size();
  if (rank > static_cast<size_t>(kBinaryCudaMaxRank)) return false;
  BinaryCudaParams p;
  p.kind = kind;
  p.rank = static_cast<int32_t>(rank);
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < rank - a.size() ? 1 : a[k - (rank - a.size())];
    const int64_t db = k < rank - b.size() ? 1 : b[k - (rank - b.size())];
    if (da != db && da != 1 && db != 1) return false;
    p.dims[k] = da == 1 ? db : da;
  }
  auto strides = [&](const std::vector<int64_t>& in, int64_t* s) {
    int64_t stride = 1;
    for (size_t k = 0; k < in.size(); ++k) {
      const size_t axis = rank - 1 - k;
      const int64_t dim = in[in.size() - 1 - k];
      s[axis] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
  };
  strides(a, p.a_strides);
  strides(b, p.b_strides);
  bool same = true;
  for (size_t k = 0; k < rank; ++k) {
    const int64_t da = k < rank - a.size() ? 1 : a[k - (rank - a.size())];
    const int64_t db = k < rank - b.size() ? 1 : b[k - (rank - b.size())];
    same = same && da == p.dims[k] && db == p.dims[k];
  }
  p.same_shape = same && a.size() == rank && b.size() == rank;
  *out = p;
  return true;
}

size_t BinaryCudaWorkspaceSize(const BinaryCudaParams& params);  // 0
CudaStatus BinaryCuda(const BinaryCudaParams& params, const float* a, const float* b, float* y, void* workspace,
                      size_t workspace_bytes, cudaStream_t stream);

enum class UnaryCudaKind : int32_t { kRelu, kLeakyRelu, kSigmoid, kClip, kTanh, kExp, kHardSigmoid, kHardSwish };

struct UnaryCudaParams {
  UnaryCudaKind kind = UnaryCudaKind::kRelu;
  int64_t n = 0;
  float alpha = 0.01f, beta = 0.5f;         // LeakyRelu alpha; HardSigmoid alpha, beta (as the CPU op)
  float lo = -INFINITY, hi = INFINITY;      // Clip
};

size_t UnaryCudaWorkspaceSize(const UnaryCudaParams& params);  // 0
CudaStatus UnaryCuda(const UnaryCudaParams& params, const float* x, float* y, void* workspace, size_t workspace_bytes,
                     cudaStream_t stream);

// n elements from `from` to `to` (fp32 → fp16 rounds to nearest even). Same dtypes: a copy.
CudaStatus CastCuda(CudaDType from, CudaDType to, int64_t n, const void* x, void* y, cudaStream_t stream);

}  // namespace facesight
