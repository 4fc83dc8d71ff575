// Batched distances and top-k against plain double formulas and a full sort, per SIMD variant (ctest
// runs it under FACESIGHT_ISA=generic/avx2 too). Distances: 1e-5 relative + 1e-5·sqrt(D) absolute.
// Top-k must equal the first k of the full matrix sorted by (value, index), exactly.
#include <algorithm>
#include <numeric>

#include "test_util.h"
#include "vision/distance.h"
#include "vision/distance_kernels.h"

using namespace facesight;
using namespace facesight_test;

static double ReferenceValue(DistanceMetric metric, const float* q, const float* g, int64_t D, bool normalized) {
  double dot = 0, qq = 0, gg = 0, sq = 0;
  for (int64_t i = 0; i < D; ++i) {
    dot += static_cast<double>(q[i]) * g[i], qq += static_cast<double>(q[i]) * q[i], gg += static_cast<double>(g[i]) * g[i];
    sq += (static_cast<double>(q[i]) - g[i]) * (static_cast<double>(q[i]) - g[i]);
  }
  switch (metric) {
    case DistanceMetric::SquaredEuclidean: return sq;
    case DistanceMetric::Euclidean: return std::sqrt(sq);
    default: return normalized ? dot : (qq > 0 && gg > 0 ? dot / std::sqrt(qq * gg) : 0.0);
  }
}

static void Normalize(std::vector<float>& v, int64_t D) {
  for (size_t r = 0; r < v.size() / D; ++r) {
    double n = 0;
    for (int64_t i = 0; i < D; ++i) n += static_cast<double>(v[r * D + i]) * v[r * D + i];
    for (int64_t i = 0; i < D; ++i) v[r * D + i] = static_cast<float>(v[r * D + i] / std::sqrt(n));
  }
}

static void CheckCase(int64_t Q, int64_t G, int64_t D, uint32_t seed, ThreadPool* pool) {
  auto queries = RandomVector(Q * D, seed), gallery = RandomVector(G * D, seed + 1);
  // Duplicate gallery rows (exact ties) and a query equal to a gallery row (distance exactly 0).
  if (G >= 4) std::copy(gallery.begin(), gallery.begin() + D, gallery.begin() + 3 * D);
  if (G >= 2) std::copy(gallery.begin() + (G - 1) * D, gallery.begin() + G * D, queries.begin());
  auto unit_q = queries, unit_g = gallery;
  Normalize(unit_q, D), Normalize(unit_g, D);
  for (DistanceMetric metric : {DistanceMetric::SquaredEuclidean, DistanceMetric::Euclidean, DistanceMetric::Cosine})
    for (bool normalized : {true, false}) {
      if (metric != DistanceMetric::Cosine && !normalized) continue;
      const auto& q = normalized ? unit_q : queries;
      const auto& g = normalized ? unit_g : gallery;
      DistanceParams p;
      p.queries = Q, p.gallery = G, p.dim = D, p.metric = metric, p.normalized = normalized;
      for (int64_t k : {int64_t{1}, int64_t{5}, G + 3}) {
        p.top_k = static_cast<int32_t>(k);
        std::vector<float> ws(DistanceWorkspaceSize(p) / 4 + 1);
        std::vector<float> dist(Q * G, NAN), top_value(Q * k, NAN);
        std::vector<int32_t> top_index(Q * k, -9);
        Distances(p, q.data(), g.data(), dist.data(), top_index.data(), top_value.data(), ws.data(), pool);
        std::vector<float> ref(Q * G);
        for (int64_t i = 0; i < Q; ++i)
          for (int64_t j = 0; j < G; ++j)
            ref[i * G + j] = static_cast<float>(ReferenceValue(metric, &q[i * D], &g[j * D], D, normalized));
        const double tol = 1e-5 * std::sqrt(static_cast<double>(D));
        const double r = ToleranceRatio(dist.data(), ref.data(), ref.size(), 1e-5, tol);
        CHECK(r <= 1, "Q=%lld G=%lld D=%lld metric %d normalized %d: ratio %g", (long long)Q, (long long)G, (long long)D,
              static_cast<int>(metric), normalized, r);
        if (G >= 2 && metric != DistanceMetric::Cosine) CHECK(dist[G - 1] == 0.f, "self distance %g", dist[G - 1]);
        // Top-k: the full row sorted by (value, index), nearest first.
        const bool larger = metric == DistanceMetric::Cosine;
        bool same = true;
        for (int64_t i = 0; i < Q; ++i) {
          std::vector<int32_t> order(G);
          std::iota(order.begin(), order.end(), 0);
          const float* row = &dist[i * G];
          std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
            if (row[a] != row[b]) return larger ? row[a] > row[b] : row[a] < row[b];
            return a < b;
          });
          for (int64_t j = 0; j < k; ++j) {
            const int32_t want = j < G ? order[j] : -1;
            const float want_value = j < G ? row[want] : (larger ? -INFINITY : INFINITY);
            same &= top_index[i * k + j] == want && top_value[i * k + j] == want_value;
          }
        }
        CHECK(same, "top-%lld Q=%lld G=%lld D=%lld metric %d", (long long)k, (long long)Q, (long long)G, (long long)D,
              static_cast<int>(metric));
        // Top-k alone (no matrix) gives the same answer.
        std::vector<float> top_value2(Q * k);
        std::vector<int32_t> top_index2(Q * k);
        Distances(p, q.data(), g.data(), nullptr, top_index2.data(), top_value2.data(), ws.data(), pool);
        CHECK(top_index2 == top_index && top_value2 == top_value, "top-k without the matrix differs");
      }
    }
}

int main() {
  std::printf("SIMD variant: %s\n", DistanceSimd().isa);
  ThreadPool pool(2);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {3, 100, 128}, {5, 1000, 128}, {17, 257, 512},
                               {2, 5, 1000}, {64, 300, 33}, {9, 31, 17}, {1, 4096, 128}};
  uint32_t seed = 1;
  for (const auto& s : shapes)
    for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) CheckCase(s[0], s[1], s[2], seed += 2, p);
  return Finish("test_vision_distance");
}
