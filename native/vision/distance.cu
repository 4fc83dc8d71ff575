// CUDA distances and top-k. A block owns 64 queries × one split of the gallery and walks its split in
// tiles of 128 rows: the query and gallery tiles go through shared memory 32 dimensions at a time,
// each thread accumulates a 4 × 8 block of (query, gallery) values in registers with fp32 FMA, and the
// tile's 64 × 128 values then pass through shared memory to the block's 8 warps, each of which keeps
// the running top-k of 8 queries in registers (one entry per lane, sorted; inserting is a ballot and a
// shuffle). Candidates are first tested against the current k-th entry, so after the first tiles
// almost nothing is inserted. Splits (enough blocks to fill the GPU) leave partial lists in the
// workspace; a second kernel merges them per query.
#include "vision/distance_cuda.h"

#include <algorithm>
#include <cmath>

#include "common/cuda_util.h"

namespace facesight {
namespace {

using namespace cuda_detail;

constexpr int kBQ = 64;    // queries per block
constexpr int kBG = 128;   // gallery rows per tile
constexpr int kDK = 32;    // dimensions per shared-memory stage
constexpr int kThreads = 256;
constexpr int kQStride = kBQ + 4, kGStride = kBG + 4, kDStride = kBG + 1;  // padded rows (bank conflicts)
constexpr int kStageFloats = kDK * kQStride + kDK * kGStride;
constexpr int kSmemFloats = kStageFloats > kBQ * kDStride ? kStageFloats : kBQ * kDStride;
constexpr int kQueriesPerWarp = kBQ / (kThreads / 32);
constexpr int64_t kTargetBlocks = 1024;  // about 4 waves of 2 blocks per SM on a 132-SM H200
constexpr int32_t kNoIndex = 0x7fffffff;  // sentinel: worse than every real entry

enum Metric { kSquared, kEuclid, kCosine };

struct Plan {
  int64_t query_tiles, splits, rows_per_split;
  bool norms, partial;
  float* query_inv_norm;
  float* gallery_inv_norm;
  float* part_value;
  int32_t* part_index;
  size_t total;
};

Plan MakePlan(const DistanceParams& p, void* base) {
  Plan plan{};
  const int64_t k = p.top_k;
  plan.query_tiles = (p.queries + kBQ - 1) / kBQ;
  const int64_t gallery_tiles = (p.gallery + kBG - 1) / kBG;
  int64_t splits = plan.query_tiles > 0 ? (kTargetBlocks + plan.query_tiles - 1) / plan.query_tiles : 1;
  splits = std::max<int64_t>(1, std::min(splits, gallery_tiles));
  const int64_t tiles_per_split = gallery_tiles > 0 ? (gallery_tiles + splits - 1) / splits : 1;
  plan.splits = gallery_tiles > 0 ? (gallery_tiles + tiles_per_split - 1) / tiles_per_split : 0;
  plan.rows_per_split = tiles_per_split * kBG;
  plan.norms = p.metric == DistanceMetric::Cosine && !p.normalized;
  plan.partial = k > 0 && plan.splits > 1;
  WorkspaceCarver c(base);
  if (plan.norms) {
    plan.query_inv_norm = c.Take<float>(p.queries);
    plan.gallery_inv_norm = c.Take<float>(p.gallery);
  }
  if (plan.partial) {
    plan.part_value = c.Take<float>(p.queries * plan.splits * k);
    plan.part_index = c.Take<int32_t>(p.queries * plan.splits * k);
  }
  plan.total = c.used();
  return plan;
}

template <bool kLarger>
__device__ __forceinline__ bool Better(float va, int32_t ia, float vb, int32_t ib) {
  if (va != vb) return kLarger ? va > vb : va < vb;
  return ia < ib;
}

// Inserts (cv, ci) into the warp's sorted list (lane l holds entry l) if it ranks among the first k.
// Called by all 32 lanes with the same candidate.
template <bool kLarger>
__device__ __forceinline__ void Insert(float& lv, int32_t& li, float cv, int32_t ci, int k, int lane) {
  const int p = __popc(__ballot_sync(0xffffffffu, Better<kLarger>(lv, li, cv, ci)));  // entries ahead of it
  if (p >= k) return;
  const float uv = __shfl_up_sync(0xffffffffu, lv, 1);
  const int32_t ui = __shfl_up_sync(0xffffffffu, li, 1);
  if (lane > p) lv = uv, li = ui;
  else if (lane == p) lv = cv, li = ci;
}

// Offers 32 candidates (one per lane; valid ones only) to the list.
template <bool kLarger>
__device__ __forceinline__ void Offer(float& lv, int32_t& li, float v, int32_t gi, bool valid, int k, int lane) {
  const float tv = __shfl_sync(0xffffffffu, lv, k - 1);
  const int32_t ti = __shfl_sync(0xffffffffu, li, k - 1);
  for (unsigned m = __ballot_sync(0xffffffffu, valid && Better<kLarger>(v, gi, tv, ti)); m; m &= m - 1) {
    const int src = __ffs(m) - 1;
    Insert<kLarger>(lv, li, __shfl_sync(0xffffffffu, v, src), __shfl_sync(0xffffffffu, gi, src), k, lane);
  }
}

struct TileArgs {
  const float* queries;
  const float* gallery;
  int64_t Q, G, D;
  int k;
  int64_t rows_per_split;
  const float* query_inv_norm;    // null unless Cosine on unnormalised inputs
  const float* gallery_inv_norm;
  float* distances;               // [Q][G] or null
  float* list_value;              // [Q][splits][k]: partial lists, or the final output when splits = 1
  int32_t* list_index;
  int64_t splits;
  bool final_output;              // translate sentinels to −1 (single split writes the output directly)
};

template <int kMetric, bool kTopK>
__global__ void __launch_bounds__(kThreads, 2) TileKernel(const TileArgs a) {
  constexpr bool kLarger = kMetric == kCosine;
  __shared__ __align__(16) float smem[kSmemFloats];
  float* sQ = smem;                    // [kDK][kQStride]
  float* sG = smem + kDK * kQStride;   // [kDK][kGStride]
  float* sD = smem;                    // [kBQ][kDStride], after the stages are consumed
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int tx = tid & 15, ty = tid >> 4;  // gallery columns tx·4 + {0..3} and 64 + tx·4 + {0..3}; queries ty·4 + {0..3}
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ;
  const int64_t g_begin = static_cast<int64_t>(blockIdx.y) * a.rows_per_split;
  const int64_t g_end = g_begin + a.rows_per_split < a.G ? g_begin + a.rows_per_split : a.G;
  const float none = kLarger ? -INFINITY : INFINITY;

  float lv[kQueriesPerWarp];
  int32_t li[kQueriesPerWarp];
#pragma unroll
  for (int j = 0; j < kQueriesPerWarp; ++j) lv[j] = none, li[j] = kNoIndex;

  for (int64_t g0 = g_begin; g0 < g_end; g0 += kBG) {
    float acc[4][8];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    for (int64_t d0 = 0; d0 < a.D; d0 += kDK) {
      __syncthreads();  // the previous stage (or the previous tile's selection) is done with smem
      const int dd = lane;
      const int64_t d = d0 + dd;
#pragma unroll
      for (int r = 0; r < kBQ / 8; ++r) {  // warp w loads rows w + 8r: 32 consecutive floats each
        const int row = warp + 8 * r;
        const int64_t q = q0 + row;
        sQ[dd * kQStride + row] = q < a.Q && d < a.D ? a.queries[q * a.D + d] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kBG / 8; ++r) {
        const int row = warp + 8 * r;
        const int64_t g = g0 + row;
        sG[dd * kGStride + row] = g < g_end && d < a.D ? a.gallery[g * a.D + d] : 0.f;
      }
      __syncthreads();
      // Zero padding past D and past the tile's rows contributes 0 to both dot and squared difference.
#pragma unroll 8
      for (int kk = 0; kk < kDK; ++kk) {
        const float4 qv = *reinterpret_cast<const float4*>(sQ + kk * kQStride + ty * 4);
        const float4 ga = *reinterpret_cast<const float4*>(sG + kk * kGStride + tx * 4);
        const float4 gb = *reinterpret_cast<const float4*>(sG + kk * kGStride + 64 + tx * 4);
        const float q[4] = {qv.x, qv.y, qv.z, qv.w};
        const float g[8] = {ga.x, ga.y, ga.z, ga.w, gb.x, gb.y, gb.z, gb.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            if (kMetric == kCosine) {
              acc[i][j] = fmaf(q[i], g[j], acc[i][j]);
            } else {
              const float diff = q[i] - g[j];
              acc[i][j] = fmaf(diff, diff, acc[i][j]);
            }
          }
      }
    }

    // Finish the values as the CPU does: sqrt, or scaling by both inverse norms.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t q = q0 + ty * 4 + i;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int col = j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4);
        const int64_t g = g0 + col;
        float v = acc[i][j];
        if (kMetric == kEuclid) v = sqrtf(v);
        if (kMetric == kCosine && a.query_inv_norm && q < a.Q && g < g_end)
          v = v * (a.query_inv_norm[q] * a.gallery_inv_norm[g]);
        acc[i][j] = v;
        if (a.distances && q < a.Q && g < g_end) a.distances[q * a.G + g] = v;
      }
    }
    if constexpr (kTopK) {
      __syncthreads();  // all threads are done reading the stage buffers that sD overlays
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) sD[(ty * 4 + i) * kDStride + (j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4))] = acc[i][j];
      __syncthreads();
#pragma unroll
      for (int jq = 0; jq < kQueriesPerWarp; ++jq) {
        const int row = warp * kQueriesPerWarp + jq;
        if (q0 + row >= a.Q) continue;  // warp-uniform
#pragma unroll
        for (int c = 0; c < kBG / 32; ++c) {
          const int col = c * 32 + lane;
          const int64_t g = g0 + col;
          Offer<kLarger>(lv[jq], li[jq], sD[row * kDStride + col], static_cast<int32_t>(g), g < g_end, a.k, lane);
        }
      }
    }
  }

  if constexpr (kTopK) {
#pragma unroll
    for (int jq = 0; jq < kQueriesPerWarp; ++jq) {
      const int64_t q = q0 + warp * kQueriesPerWarp + jq;
      if (q >= a.Q || lane >= a.k) continue;
      const int64_t at = (q * a.splits + blockIdx.y) * a.k + lane;
      a.list_value[at] = lv[jq];
      a.list_index[at] = a.final_output && li[jq] == kNoIndex ? -1 : li[jq];
    }
  }
}

// One warp per query: merges its `splits` partial lists (also writes the all-sentinel output when the
// gallery is empty: splits = 0).
template <bool kLarger>
__global__ void MergeKernel(const float* part_value, const int32_t* part_index, int64_t Q, int64_t splits, int k,
                            float* top_value, int32_t* top_index) {
  const int lane = threadIdx.x & 31;
  const int64_t q = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (q >= Q) return;  // warp-uniform
  float lv = kLarger ? -INFINITY : INFINITY;
  int32_t li = kNoIndex;
  const int64_t n = splits * k;
  for (int64_t e0 = 0; e0 < n; e0 += 32) {
    const int64_t e = e0 + lane;
    const bool in = e < n;
    const float v = in ? part_value[q * n + e] : 0.f;
    const int32_t i = in ? part_index[q * n + e] : kNoIndex;
    Offer<kLarger>(lv, li, v, i, in && i != kNoIndex, k, lane);
  }
  if (lane < k) {
    top_value[q * k + lane] = lv;
    top_index[q * k + lane] = li == kNoIndex ? -1 : li;
  }
}

// 1/|v| per row (0 for a zero vector), one warp per row: queries then gallery.
__global__ void InverseNormKernel(const float* queries, const float* gallery, int64_t Q, int64_t G, int64_t D,
                                  float* query_inv, float* gallery_inv) {
  const int lane = threadIdx.x & 31;
  const int64_t r = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  if (r >= Q + G) return;
  const float* v = r < Q ? queries + r * D : gallery + (r - Q) * D;
  float sq = 0.f;
  for (int64_t i = lane; i < D; i += 32) sq = fmaf(v[i], v[i], sq);
  for (int off = 16; off; off >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, off);
  if (lane == 0) (r < Q ? query_inv[r] : gallery_inv[r - Q]) = sq > 0 ? 1.f / sqrtf(sq) : 0.f;
}

template <int kMetric>
CudaStatus LaunchTiles(const Plan& plan, const TileArgs& args, bool top_k, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(plan.query_tiles), static_cast<unsigned>(plan.splits));
  if (top_k)
    TileKernel<kMetric, true><<<grid, kThreads, 0, stream>>>(args);
  else
    TileKernel<kMetric, false><<<grid, kThreads, 0, stream>>>(args);
  return LastLaunchStatus();
}

}  // namespace

size_t DistancesCudaWorkspaceSize(const DistanceParams& params) { return MakePlan(params, nullptr).total; }

CudaStatus DistancesCuda(const DistanceParams& p, const float* queries, const float* gallery, float* distances,
                         int32_t* top_index, float* top_value, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  if (p.queries < 0 || p.gallery < 0 || p.dim < 0) return CudaStatus::Invalid("DistancesCuda: negative size");
  if (p.gallery > INT32_MAX) return CudaStatus::Invalid("DistancesCuda: gallery over 2^31 rows");
  const bool top_k = top_index && top_value && p.top_k > 0;
  if (top_k && p.top_k > kMaxCudaTopK) return CudaStatus::Invalid("DistancesCuda: top_k above 32");
  DistanceParams params = p;
  if (!top_k) params.top_k = 0;
  const Plan plan = MakePlan(params, workspace);
  if (workspace_bytes < plan.total) return CudaStatus::Workspace();
  if (p.queries == 0 || (!top_k && !distances)) return CudaStatus::Ok();
  const bool larger = p.metric == DistanceMetric::Cosine;
  CudaStatus st;
  if (plan.norms && p.queries + p.gallery > 0) {
    InverseNormKernel<<<GridFor((p.queries + p.gallery) * 32, kThreads), kThreads, 0, stream>>>(
        queries, gallery, p.queries, p.gallery, p.dim, plan.query_inv_norm, plan.gallery_inv_norm);
    if (!(st = LastLaunchStatus()).ok()) return st;
  }
  if (plan.splits > 0) {
    TileArgs args{queries, gallery, p.queries, p.gallery, p.dim, top_k ? p.top_k : 0, plan.rows_per_split,
                  plan.query_inv_norm, plan.gallery_inv_norm, distances,
                  plan.partial ? plan.part_value : top_value, plan.partial ? plan.part_index : top_index,
                  plan.partial ? plan.splits : 1, !plan.partial};
    switch (p.metric) {
      case DistanceMetric::SquaredEuclidean: st = LaunchTiles<kSquared>(plan, args, top_k, stream); break;
      case DistanceMetric::Euclidean: st = LaunchTiles<kEuclid>(plan, args, top_k, stream); break;
      default: st = LaunchTiles<kCosine>(plan, args, top_k, stream); break;
    }
    if (!st.ok()) return st;
  }
  if (top_k && (plan.partial || plan.splits == 0)) {
    const int64_t splits = plan.partial ? plan.splits : 0;
    const unsigned grid = GridFor(p.queries * 32, kThreads);
    if (larger)
      MergeKernel<true><<<grid, kThreads, 0, stream>>>(plan.part_value, plan.part_index, p.queries, splits, p.top_k,
                                                       top_value, top_index);
    else
      MergeKernel<false><<<grid, kThreads, 0, stream>>>(plan.part_value, plan.part_index, p.queries, splits, p.top_k,
                                                        top_value, top_index);
    if (!(st = LastLaunchStatus()).ok()) return st;
  }
  return CudaStatus::Ok();
}

}  // namespace facesight
