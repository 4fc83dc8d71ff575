// CUDA Transpose (any permutation up to rank 8) on fp32 or fp16 data: y[i] = x[src(i)], where src
// walks y's dims with x's strides permuted (the detection heads' NCHW → NHWC before their Reshape).
// Pure data movement: results equal the CPU op's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/cuda_util.h"
#include "ops/gemm_cuda.h"  // CudaDType

namespace facesight {

constexpr int kTransposeCudaMaxRank = 8;

struct TransposeCudaParams {
  int32_t rank = 0;
  int64_t out_dims[kTransposeCudaMaxRank] = {};
  int64_t in_strides[kTransposeCudaMaxRank] = {};  // x's element stride along y's axis k (x's axis perm[k])
  CudaDType dtype = CudaDType::kF32;
};

// Host helper: params for y = transpose(x, perm). False when perm is not a permutation of the rank
// or the rank exceeds kTransposeCudaMaxRank.
inline bool MakeTransposeCudaParams(const std::vector<int64_t>& x_shape, const std::vector<int64_t>& perm, CudaDType dtype,
                                    TransposeCudaParams* out) {
  const size_t rank = x_shape.size();
  if (perm.size() != rank || rank > static_cast<size_t>(kTransposeCudaMaxRank)) return false;
  std::vector<int64_t> stride(rank, 1);
  for (size_t d = rank; d-- > 1;) stride[d - 1] = stride[d] * x_shape[d];
  std::vector<bool> seen(rank, false);
  TransposeCudaParams p;
  p.rank = static_cast<int32_t>(rank);
  p.dtype = dtype;
  for (size_t k = 0; k < rank; ++k) {
    if (perm[k] < 0 || perm[k] >= static_cast<int64_t>(rank) || seen[perm[k]]) return false;
    seen[perm[k]] = true;
    p.out_dims[k] = x_shape[perm[k]];
    p.in_strides[k] = stride[perm[k]];
  }
  *out = p;
  return true;
}

size_t TransposeCudaWorkspaceSize(const TransposeCudaParams& params);  // 0
CudaStatus TransposeCuda(const TransposeCudaParams& params, const void* x, void* y, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream);

}  // namespace facesight
