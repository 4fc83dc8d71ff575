// CUDA variant of distance.h: distances between Q queries and a gallery of G vectors resident on the
// GPU, and/or the top k (≤ kMaxCudaTopK) gallery entries per query. Tiled: the Q × G matrix is never
// materialised unless asked for (distances non-null), so it scales to 1,024 queries × 1,000,000 × 128.
// Semantics as the CPU's: nearest first, equal values by lower index, index −1 / ±infinity past G,
// Euclidean summed as differences (a vector's distance to itself is exactly 0). Values differ from the
// CPU's by summation order only (fp32 FMA; relative error ~1e-6 for D = 128).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/cuda_util.h"
#include "vision/distance.h"

namespace facesight {

constexpr int32_t kMaxCudaTopK = 32;  // one warp holds a query's list, one entry per lane

// Scratch: inverse norms (Cosine on unnormalised inputs) and the per-split partial top-k lists.
size_t DistancesCudaWorkspaceSize(const DistanceParams& params);

// Device pointers throughout: queries [Q][D], gallery [G][D] (rows contiguous), distances [Q][G] or
// null, top_index / top_value [Q][top_k] or null (both or neither; top_k ≤ kMaxCudaTopK).
CudaStatus DistancesCuda(const DistanceParams& params, const float* queries, const float* gallery, float* distances,
                         int32_t* top_index, float* top_value, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream);

}  // namespace facesight
