#include "vision/distance.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/isa_dispatch.h"
#include "vision/distance_kernels.h"

namespace facesight {

FACESIGHT_ISA_DISPATCH(DistanceKernels, kDistanceKernels, DistanceSimd)

namespace {

// The k best entries seen so far as a max-heap on "worse", so the root is the one to evict. It lives
// in the caller's output arrays: no scratch. Ties rank by index, which keeps the result stable.
struct TopK {
  float* value;
  int32_t* index;
  int64_t k;
  bool larger_is_better;

  bool Worse(float va, int32_t ia, float vb, int32_t ib) const {
    if (va != vb) return larger_is_better ? va < vb : va > vb;
    return ia > ib;
  }
  bool Worse(int64_t a, int64_t b) const { return Worse(value[a], index[a], value[b], index[b]); }
  void Swap(int64_t a, int64_t b) {
    std::swap(value[a], value[b]);
    std::swap(index[a], index[b]);
  }
  void SiftDown(int64_t i, int64_t size) {
    for (;;) {
      int64_t worst = i;
      const int64_t l = 2 * i + 1, r = l + 1;
      if (l < size && Worse(l, worst)) worst = l;
      if (r < size && Worse(r, worst)) worst = r;
      if (worst == i) return;
      Swap(i, worst);
      i = worst;
    }
  }
  // size: entries already held (min(k, candidates pushed so far)).
  void Push(int64_t size, float v, int32_t i) {
    if (size < k) {
      value[size] = v, index[size] = i;
      for (int64_t c = size; c > 0 && Worse(c, (c - 1) / 2); c = (c - 1) / 2) Swap(c, (c - 1) / 2);
    } else if (Worse(value[0], index[0], v, i)) {
      value[0] = v, index[0] = i;
      SiftDown(0, size);
    }
  }
  // Heap sort: evicting the root to the back each time leaves the array best first.
  void Finish(int64_t size) {
    for (int64_t end = size - 1; end > 0; --end) {
      Swap(0, end);
      SiftDown(0, end);
    }
    const float none = larger_is_better ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    for (int64_t j = size; j < k; ++j) value[j] = none, index[j] = -1;
  }
};

inline float InverseNorm(const DistanceKernels& kernels, const float* v, int64_t dim) {
  float sq;
  kernels.dot_rows(v, v, dim, 1, dim, &sq);
  return sq > 0 ? 1.f / std::sqrt(sq) : 0.f;
}

}  // namespace

size_t DistanceWorkspaceSize(const DistanceParams& p) {
  const bool norms = p.metric == DistanceMetric::Cosine && !p.normalized;
  return norms ? static_cast<size_t>(p.queries + p.gallery) * sizeof(float) : 0;
}

void Distances(const DistanceParams& p, const float* queries, const float* gallery, float* distances,
               int32_t* top_index, float* top_value, void* workspace, ThreadPool* pool) {
  const int64_t Q = p.queries, G = p.gallery, D = p.dim, k = top_index ? p.top_k : 0;
  const DistanceKernels& kernels = DistanceSimd();
  const bool cosine = p.metric == DistanceMetric::Cosine;
  const bool with_norms = cosine && !p.normalized;
  float* query_inv_norm = static_cast<float*>(workspace);
  float* gallery_inv_norm = with_norms ? query_inv_norm + Q : nullptr;
  if (with_norms) {
    ParallelFor(pool, Q + G, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        query_inv_norm[i] = InverseNorm(kernels, i < Q ? queries + i * D : gallery + (i - Q) * D, D);
    });
  }

  // Gallery rows per block: about 32 KiB, so a block stays in L1/L2 while the task's queries sweep it.
  constexpr int64_t kMaxBlock = 256;
  const int64_t block = std::min<int64_t>(kMaxBlock, std::max<int64_t>(16, 8192 / std::max<int64_t>(D, 1)));
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(G * D, 1));
  ParallelFor(pool, Q, grain, [&](int64_t q_begin, int64_t q_end) {
    float values[kMaxBlock];
    for (int64_t g0 = 0; g0 < G; g0 += block) {
      const int64_t rows = std::min(block, G - g0);
      for (int64_t q = q_begin; q < q_end; ++q) {
        const float* qv = queries + q * D;
        const float* gv = gallery + g0 * D;
        if (cosine) {
          kernels.dot_rows(qv, gv, D, rows, D, values);
          if (with_norms)
            for (int64_t r = 0; r < rows; ++r) values[r] *= query_inv_norm[q] * gallery_inv_norm[g0 + r];
        } else {
          kernels.squared_l2_rows(qv, gv, D, rows, D, values);
          if (p.metric == DistanceMetric::Euclidean)
            for (int64_t r = 0; r < rows; ++r) values[r] = std::sqrt(values[r]);
        }
        if (distances) std::memcpy(distances + q * G + g0, values, rows * sizeof(float));
        if (k > 0) {
          TopK top{top_value + q * k, top_index + q * k, k, cosine};
          for (int64_t r = 0; r < rows; ++r) top.Push(std::min(k, g0 + r), values[r], static_cast<int32_t>(g0 + r));
        }
      }
    }
    if (k > 0)
      for (int64_t q = q_begin; q < q_end; ++q) TopK{top_value + q * k, top_index + q * k, k, cosine}.Finish(std::min(k, G));
  });
}

}  // namespace facesight
